/**
 * A small, honest PromQL check for rules written in TypeScript: brackets balance, strings close, and the metric
 * names an expression reads can be listed. It is not a PromQL parser (Prometheus validates rules when it loads them);
 * it catches the mistakes a template string invites.
 */

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "inf",
  "nan",
]);

/** Problems with an expression's brackets and strings; empty when it is well formed at that level. */
export function expressionProblems(expr: string): string[] {
  const problems: string[] = [];
  const stack: { char: string; at: number }[] = [];
  const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  let quote: string | null = null;
  for (let i = 0; i < expr.length; i++) {
    const char = expr.charAt(i);
    if (quote) {
      if (char === "\\") i++;
      else if (char === quote) quote = null;
      continue;
    }
    if (char === '"' || char === "'" || char === "`") quote = char;
    else if (char === "(" || char === "[" || char === "{") stack.push({ char, at: i });
    else if (char in pairs) {
      const open = stack.pop();
      if (open?.char !== pairs[char]) problems.push(`unbalanced "${char}" at ${i}`);
    }
  }
  if (quote) problems.push(`unterminated string (${quote})`);
  for (const open of stack) problems.push(`unclosed "${open.char}" at ${open.at}`);
  if (expr.trim() === "") problems.push("empty expression");
  return problems;
}

/** The metric names an expression selects: identifiers that are not functions, keywords or label lists. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const token = match[0];
    const after = stripped.slice((match.index ?? 0) + token.length).trimStart();
    if (after.startsWith("(")) continue; // a function call
    if (KEYWORDS.has(token.toLowerCase())) continue;
    if (/^\d/.test(token)) continue;
    names.add(token);
  }
  return [...names].sort();
}
