/**
 * The escape hatch of STYLE.md rule 7: a stack may adjust the args a component is about to pass to one of its
 * children, without forking the component. Each component documents which children it exposes.
 *
 * @example
 * new Database("db", { ..., transform: { cluster: (args) => { args.preferredMaintenanceWindow = "sun:02:00-sun:03:00"; } } });
 */
export type Transform<Args> = (args: Args) => void;

/** Applies an optional transform to args built by the component, returning them for construction. */
export function applyTransform<Args>(args: Args, transform: Transform<Args> | undefined): Args {
  transform?.(args);
  return args;
}
