ALTER TABLE "history" ADD COLUMN "queue" text;--> statement-breakpoint
ALTER TABLE "history" ADD COLUMN "course_key" text;