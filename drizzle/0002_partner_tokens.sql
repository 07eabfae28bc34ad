CREATE TABLE "api_tokens" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"organizations" text[] NOT NULL,
	"permission" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_tokens_permission_ck" CHECK (permission in ('read', 'write')),
	CONSTRAINT "api_tokens_organizations_ck" CHECK (cardinality(organizations) > 0)
);
--> statement-breakpoint
ALTER TABLE "program_courses" ADD COLUMN "position" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "submitted_jobs" ADD COLUMN "program_uuid" uuid;--> statement-breakpoint
ALTER TABLE "submitted_jobs" ADD COLUMN "requested_by" text;--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_hash_uq" ON "api_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_live_name_uq" ON "api_tokens" USING btree ("name") WHERE revoked_at is null;