CREATE TABLE "outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"event_id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"event_type" text NOT NULL,
	"topic" text NOT NULL,
	"user_id" bigint NOT NULL,
	"course_key" text NOT NULL,
	"mode" text,
	"is_active" boolean,
	"org_key" text,
	"username" text NOT NULL,
	"email" text NOT NULL,
	"enrolled_at" timestamp with time zone,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"published_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "outbox_unpublished_idx" ON "outbox" USING btree ("id") WHERE published_at is null;--> statement-breakpoint
CREATE INDEX "outbox_published_idx" ON "outbox" USING btree ("published_at") WHERE published_at is not null;