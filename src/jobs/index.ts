import { accountCreatedJob } from './account-created.js';
import type { HandlerRegistry } from './context.js';
import { courseEnrollmentChangedJob } from './course-enrollment-changed.js';
import { expireWaitingEnrollmentsJob } from './expire-waiting-enrollments.js';
import { linkProgramEnrollmentsJob } from './link-program-enrollments.js';
import { retireLearnerJob } from './retire-learner.js';
import { upsertProgramJob } from './upsert-program.js';
import { writeProgramCourseEnrollmentsJob } from './write-program-course-enrollments.js';
import { writeProgramCourseEnrollmentsUploadJob } from './write-program-course-enrollments-upload.js';
import { writeProgramEnrollmentsJob } from './write-program-enrollments.js';

/** Every job name of docs/contract.md and its handler, and the service's own course upload job. */
export const handlers: HandlerRegistry = {
  'upsert-program': upsertProgramJob,
  'write-program-enrollments': writeProgramEnrollmentsJob,
  'write-program-course-enrollments': writeProgramCourseEnrollmentsJob,
  'write-program-course-enrollments-upload': writeProgramCourseEnrollmentsUploadJob,
  'link-program-enrollments': linkProgramEnrollmentsJob,
  'expire-waiting-enrollments': expireWaitingEnrollmentsJob,
  'retire-learner': retireLearnerJob,
  'account-created': accountCreatedJob,
  'course-enrollment-changed': courseEnrollmentChangedJob,
};
