/** Request and response schemas of the files API (CONTRACTS.md §3). */
import { LineText, MultiLineText, NonBlankText, StrictObject } from "@ndt/kit";
import { type Static, Type } from "@sinclair/typebox";

export const DEFECT_CLASSES = ["porosity", "crack", "inclusion"] as const;
export type DefectClass = (typeof DEFECT_CLASSES)[number];
export const IMAGE_STATUSES = ["queued", "processing", "done", "failed"] as const;

const Uuid = Type.String({ format: "uuid" });

export const InspectionParams = StrictObject({ id: Uuid });
export const ImageParams = StrictObject({ id: Uuid, imageId: Uuid });

export const CreateInspectionBody = StrictObject({
  title: NonBlankText(200),
  // null is the same as absent: the responses show an unset site or notes as null, and a client may send that back
  site: Type.Optional(Type.Union([LineText(200), Type.Null()])),
  notes: Type.Optional(Type.Union([MultiLineText(5000), Type.Null()])),
});

export const ListQuery = StrictObject({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
});

/**
 * An image's display name (never part of a storage key): from `?filename=` or the multipart part's own (which kit's
 * checks do not see, so the schema itself refuses NUL). Not blank; no control characters: reports print it.
 */
export const FileName = NonBlankText(255);

export const UploadQuery = StrictObject({ filename: Type.Optional(FileName) });

export const Inspection = Type.Object(
  {
    id: Uuid,
    title: Type.String(),
    site: Type.Union([Type.String(), Type.Null()]),
    notes: Type.Union([Type.String(), Type.Null()]),
    status: Type.Union([Type.Literal("open"), Type.Literal("closed")]),
    createdAt: Type.String({ format: "date-time" }),
  },
  { $id: "Inspection" },
);
export type Inspection = Static<typeof Inspection>;

export const InspectionList = Type.Object({
  items: Type.Array(Inspection),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export const Detection = Type.Object({
  class: Type.Union(DEFECT_CLASSES.map((c) => Type.Literal(c))),
  score: Type.Number(),
  box: Type.Tuple([Type.Number(), Type.Number(), Type.Number(), Type.Number()], {
    description: "x1, y1, x2, y2 in the original image's pixels",
  }),
});

export const Image = Type.Object(
  {
    id: Uuid,
    filename: Type.String(),
    status: Type.Union(IMAGE_STATUSES.map((s) => Type.Literal(s))),
    width: Type.Optional(Type.Integer()),
    height: Type.Optional(Type.Integer()),
    error: Type.Optional(Type.String()),
    detections: Type.Array(Detection),
  },
  { $id: "Image" },
);
export type Image = Static<typeof Image>;

export const InspectionDetail = Type.Object({
  ...Inspection.properties,
  images: Type.Array(Image),
  summary: Type.Object({
    images: Type.Integer(),
    done: Type.Integer(),
    failed: Type.Integer(),
    defects: Type.Object({ porosity: Type.Integer(), crack: Type.Integer(), inclusion: Type.Integer() }),
  }),
});
export type InspectionDetail = Static<typeof InspectionDetail>;
