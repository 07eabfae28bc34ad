CREATE TABLE "outbox_batches" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"topic" text NOT NULL,
	"event_count" integer NOT NULL,
	"event_ids" uuid[] NOT NULL,
	"event_types" text[] NOT NULL,
	"user_ids" bigint[] NOT NULL,
	"course_keys" text[] NOT NULL,
	"modes" text[] NOT NULL,
	"is_active" boolean[] NOT NULL,
	"org_keys" text[] NOT NULL,
	"usernames" text[] NOT NULL,
	"emails" text[] NOT NULL,
	"enrolled_at" timestamp with time zone[] NOT NULL,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "outbox_unpublished" (
	"batch_id" bigint PRIMARY KEY NOT NULL,
	"topic" text NOT NULL,
	"published" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX "outbox_unpublished_topic_idx" ON "outbox_unpublished" USING btree ("topic","batch_id");
--> statement-breakpoint
-- The arrays are compressed with lz4 where the server has it: pglz took most of a batch's write.
DO $$ BEGIN
  ALTER TABLE "outbox_batches"
    ALTER COLUMN "event_ids" SET COMPRESSION lz4, ALTER COLUMN "event_types" SET COMPRESSION lz4,
    ALTER COLUMN "user_ids" SET COMPRESSION lz4, ALTER COLUMN "course_keys" SET COMPRESSION lz4,
    ALTER COLUMN "modes" SET COMPRESSION lz4, ALTER COLUMN "is_active" SET COMPRESSION lz4,
    ALTER COLUMN "org_keys" SET COMPRESSION lz4, ALTER COLUMN "usernames" SET COMPRESSION lz4,
    ALTER COLUMN "emails" SET COMPRESSION lz4, ALTER COLUMN "enrolled_at" SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;--> statement-breakpoint
-- Every event of the per-event outbox becomes a batch of one, under its own id (so in the same
-- order), and those not published yet stay unpublished. No event is written meanwhile: a
-- transaction of an earlier process that wrote its events is waited for.
LOCK TABLE "outbox", "outbox_pending" IN EXCLUSIVE MODE;--> statement-breakpoint
INSERT INTO "outbox_batches" ("id", "topic", "event_count", "event_ids", "event_types", "user_ids", "course_keys", "modes", "is_active", "org_keys", "usernames", "emails", "enrolled_at", "occurred_at")
  SELECT "id", "topic", 1, ARRAY["event_id"], ARRAY["event_type"], ARRAY["user_id"], ARRAY["course_key"], ARRAY["mode"], ARRAY["is_active"], ARRAY["org_key"], ARRAY["username"], ARRAY["email"], ARRAY["enrolled_at"], "occurred_at"
  FROM "outbox" ORDER BY "id";--> statement-breakpoint
SELECT setval(pg_get_serial_sequence('outbox_batches', 'id'), GREATEST((SELECT max("id") FROM "outbox_batches"), 1), (SELECT count(*) > 0 FROM "outbox_batches"));--> statement-breakpoint
INSERT INTO "outbox_unpublished" ("batch_id", "topic")
  SELECT p."id", o."topic" FROM "outbox_pending" p JOIN "outbox" o ON o."id" = p."id";
