-- Up Migration
-- A status event carries the state that changed. Read later, the row may have moved on: a "queued" event read
-- after the detector took the image showed "processing" (twice, with its own). A payload over NOTIFY's 8000-byte
-- bound would fail the status write itself, so a state too long to carry goes as ids alone (files reads the row).
CREATE OR REPLACE FUNCTION notify_image_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text := json_build_object(
    'inspectionId', NEW.inspection_id,
    'imageId', NEW.id,
    'status', NEW.status,
    'filename', NEW.filename,
    'width', NEW.width,
    'height', NEW.height,
    'error', NEW.error
  )::text;
BEGIN
  IF octet_length(payload) > 7900 THEN
    payload := json_build_object('inspectionId', NEW.inspection_id, 'imageId', NEW.id)::text;
  END IF;
  PERFORM pg_notify('image_status', payload);
  RETURN NEW;
END;
$$;

-- Down Migration
CREATE OR REPLACE FUNCTION notify_image_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('image_status', json_build_object('inspectionId', NEW.inspection_id, 'imageId', NEW.id)::text);
  RETURN NEW;
END;
$$;
