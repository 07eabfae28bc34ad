DROP TABLE "outbox" CASCADE;--> statement-breakpoint
DROP TABLE "outbox_pending" CASCADE;