CREATE SEQUENCE "public"."commit_order" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
ALTER TABLE "job_chunks" ADD COLUMN "commit_seq" bigint;--> statement-breakpoint
ALTER TABLE "job_results" ADD COLUMN "commit_seq" bigint;