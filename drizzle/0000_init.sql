CREATE TABLE "accounts" (
	"user_id" bigint PRIMARY KEY NOT NULL,
	"username" text NOT NULL,
	"email" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "course_enrollments" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"user_id" bigint NOT NULL,
	"course_key" text NOT NULL,
	"mode" text NOT NULL,
	"is_active" boolean NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "course_staff_roles" (
	"user_id" bigint NOT NULL,
	"course_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "course_staff_roles_user_id_course_key_pk" PRIMARY KEY("user_id","course_key")
);
--> statement-breakpoint
CREATE TABLE "courses" (
	"course_key" text PRIMARY KEY NOT NULL,
	"modes" text[] NOT NULL
);
--> statement-breakpoint
CREATE TABLE "curricula" (
	"curriculum_uuid" uuid PRIMARY KEY NOT NULL,
	"program_uuid" uuid NOT NULL,
	"position" integer NOT NULL,
	"is_active" boolean NOT NULL,
	"course_keys" text[] NOT NULL
);
--> statement-breakpoint
CREATE TABLE "history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"entity" text NOT NULL,
	"entity_id" bigint NOT NULL,
	"program_enrollment_id" bigint,
	"action" text NOT NULL,
	"changes" jsonb NOT NULL,
	"job_id" text,
	"requested_by" text
);
--> statement-breakpoint
CREATE TABLE "job_chunks" (
	"key" text NOT NULL,
	"start" integer NOT NULL,
	"size" integer NOT NULL,
	"results" jsonb NOT NULL,
	"finished_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "job_chunks_key_start_pk" PRIMARY KEY("key","start")
);
--> statement-breakpoint
CREATE TABLE "job_results" (
	"key" text PRIMARY KEY NOT NULL,
	"result" jsonb NOT NULL,
	"finished_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "learners" (
	"organization_key" text NOT NULL,
	"student_key" text NOT NULL,
	"student_key_lower" text GENERATED ALWAYS AS (lower(student_key)) STORED NOT NULL,
	"user_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "learners_organization_key_student_key_lower_pk" PRIMARY KEY("organization_key","student_key_lower")
);
--> statement-breakpoint
CREATE TABLE "pending_role_assignments" (
	"program_course_enrollment_id" bigint PRIMARY KEY NOT NULL,
	"role" text DEFAULT 'staff' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "program_course_enrollments" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"program_enrollment_id" bigint NOT NULL,
	"course_key" text NOT NULL,
	"status" text NOT NULL,
	"course_enrollment_id" bigint,
	"organization_key" text NOT NULL,
	"student_key_lower" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "program_course_enrollments_status_ck" CHECK (status in ('active', 'inactive'))
);
--> statement-breakpoint
CREATE TABLE "program_courses" (
	"program_uuid" uuid NOT NULL,
	"course_key" text NOT NULL,
	"external_course_key" text,
	CONSTRAINT "program_courses_program_uuid_course_key_pk" PRIMARY KEY("program_uuid","course_key")
);
--> statement-breakpoint
CREATE TABLE "program_enrollments" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"program_uuid" uuid NOT NULL,
	"organization_key" text NOT NULL,
	"student_key" text NOT NULL,
	"student_key_lower" text GENERATED ALWAYS AS (lower(student_key)) STORED NOT NULL,
	"user_id" bigint,
	"curriculum_uuid" uuid NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "program_enrollments_status_ck" CHECK (status in ('enrolled', 'pending', 'suspended', 'canceled', 'ended'))
);
--> statement-breakpoint
CREATE TABLE "programs" (
	"program_uuid" uuid PRIMARY KEY NOT NULL,
	"program_key" text,
	"organization_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "submitted_jobs" (
	"job_id" text PRIMARY KEY NOT NULL,
	"queue" text NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "course_staff_roles" ADD CONSTRAINT "course_staff_roles_user_id_accounts_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."accounts"("user_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "curricula" ADD CONSTRAINT "curricula_program_uuid_programs_program_uuid_fk" FOREIGN KEY ("program_uuid") REFERENCES "public"."programs"("program_uuid") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "learners" ADD CONSTRAINT "learners_user_id_accounts_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."accounts"("user_id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pending_role_assignments" ADD CONSTRAINT "pending_role_assignments_program_course_enrollment_id_program_course_enrollments_id_fk" FOREIGN KEY ("program_course_enrollment_id") REFERENCES "public"."program_course_enrollments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "program_course_enrollments" ADD CONSTRAINT "program_course_enrollments_program_enrollment_id_program_enrollments_id_fk" FOREIGN KEY ("program_enrollment_id") REFERENCES "public"."program_enrollments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "program_course_enrollments" ADD CONSTRAINT "program_course_enrollments_course_enrollment_id_course_enrollments_id_fk" FOREIGN KEY ("course_enrollment_id") REFERENCES "public"."course_enrollments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "program_courses" ADD CONSTRAINT "program_courses_program_uuid_programs_program_uuid_fk" FOREIGN KEY ("program_uuid") REFERENCES "public"."programs"("program_uuid") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "program_enrollments" ADD CONSTRAINT "program_enrollments_program_uuid_programs_program_uuid_fk" FOREIGN KEY ("program_uuid") REFERENCES "public"."programs"("program_uuid") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "program_enrollments" ADD CONSTRAINT "program_enrollments_user_id_accounts_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."accounts"("user_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "accounts_username_uq" ON "accounts" USING btree ("username");--> statement-breakpoint
CREATE UNIQUE INDEX "course_enrollments_user_course_uq" ON "course_enrollments" USING btree ("user_id","course_key");--> statement-breakpoint
CREATE INDEX "curricula_program_idx" ON "curricula" USING btree ("program_uuid","position");--> statement-breakpoint
CREATE INDEX "history_pe_idx" ON "history" USING btree ("program_enrollment_id","id");--> statement-breakpoint
CREATE INDEX "history_entity_idx" ON "history" USING btree ("entity","entity_id");--> statement-breakpoint
CREATE INDEX "job_results_finished_idx" ON "job_results" USING btree ("finished_at");--> statement-breakpoint
CREATE INDEX "learners_user_idx" ON "learners" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "program_course_enrollments_pe_course_uq" ON "program_course_enrollments" USING btree ("program_enrollment_id","course_key");--> statement-breakpoint
CREATE UNIQUE INDEX "program_course_enrollments_one_active_seat_uq" ON "program_course_enrollments" USING btree ("organization_key","student_key_lower","course_key") WHERE status = 'active';--> statement-breakpoint
CREATE INDEX "program_course_enrollments_course_idx" ON "program_course_enrollments" USING btree ("course_key","id");--> statement-breakpoint
CREATE INDEX "program_course_enrollments_ce_idx" ON "program_course_enrollments" USING btree ("course_enrollment_id");--> statement-breakpoint
CREATE INDEX "program_courses_external_idx" ON "program_courses" USING btree ("program_uuid","external_course_key");--> statement-breakpoint
CREATE UNIQUE INDEX "program_enrollments_program_key_uq" ON "program_enrollments" USING btree ("program_uuid","student_key_lower");--> statement-breakpoint
CREATE UNIQUE INDEX "program_enrollments_program_user_uq" ON "program_enrollments" USING btree ("program_uuid","user_id") WHERE user_id is not null;--> statement-breakpoint
CREATE INDEX "program_enrollments_learner_idx" ON "program_enrollments" USING btree ("organization_key","student_key_lower");--> statement-breakpoint
CREATE INDEX "program_enrollments_user_idx" ON "program_enrollments" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "program_enrollments_waiting_idx" ON "program_enrollments" USING btree ("modified_at") WHERE user_id is null;