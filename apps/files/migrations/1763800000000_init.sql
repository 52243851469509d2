-- Up Migration
CREATE TABLE inspections (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL,
  title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  site text,
  notes text,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
  created_by uuid NOT NULL,
  -- clock_timestamp(): distinct within a transaction, so the keyset (created_at, id) orders creation
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- keyset pagination of one organisation's inspections, newest first
CREATE INDEX inspections_org_page_idx ON inspections (organization_id, created_at DESC, id DESC);

CREATE TABLE images (
  id uuid PRIMARY KEY,
  inspection_id uuid NOT NULL REFERENCES inspections (id) ON DELETE CASCADE,
  organization_id uuid NOT NULL,
  filename text NOT NULL,
  content_type text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg')),
  size_bytes bigint NOT NULL CHECK (size_bytes > 0),
  -- server-made: <organization>/<inspection>/<image>
  object_key text NOT NULL,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'done', 'failed')),
  width integer,
  height integer,
  error text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX images_inspection_idx ON images (inspection_id, created_at, id);

-- Written by the detector (idempotent by job id), read here for GET /inspections/:id.
CREATE TABLE detections (
  id bigserial PRIMARY KEY,
  job_id uuid NOT NULL,
  image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  class text NOT NULL CHECK (class IN ('porosity', 'crack', 'inclusion')),
  score real NOT NULL,
  x1 real NOT NULL,
  y1 real NOT NULL,
  x2 real NOT NULL,
  y2 real NOT NULL
);
CREATE INDEX detections_image_idx ON detections (image_id);
CREATE INDEX detections_job_idx ON detections (job_id);

-- Transactional outbox: written in the upload's transaction, published by the relay, then marked sent.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  job_id uuid NOT NULL UNIQUE,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

-- Image status changes for the server-sent events (delivered at commit, only to listening connections).
CREATE FUNCTION notify_image_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('image_status', json_build_object('inspectionId', NEW.inspection_id, 'imageId', NEW.id)::text);
  RETURN NEW;
END;
$$;
CREATE TRIGGER images_status_insert AFTER INSERT ON images
  FOR EACH ROW EXECUTE FUNCTION notify_image_status();
CREATE TRIGGER images_status_update AFTER UPDATE OF status ON images
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION notify_image_status();

-- Down Migration
DROP TABLE outbox;
DROP TABLE detections;
DROP TABLE images;
DROP FUNCTION notify_image_status();
DROP TABLE inspections;
