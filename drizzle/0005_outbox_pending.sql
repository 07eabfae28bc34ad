CREATE TABLE "outbox_pending" (
	"id" bigint PRIMARY KEY NOT NULL
);
--> statement-breakpoint
-- The rows not published yet stay pending.
INSERT INTO "outbox_pending" ("id") SELECT "id" FROM "outbox" WHERE "published_at" IS NULL;--> statement-breakpoint
DROP INDEX "outbox_unpublished_idx";--> statement-breakpoint
DROP INDEX "outbox_published_idx";--> statement-breakpoint
ALTER TABLE "outbox" DROP COLUMN "published_at";