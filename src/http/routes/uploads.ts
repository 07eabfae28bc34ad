import { randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forgetSubmittedJob, recordSubmittedJob } from '../../db/job-ledger.js';
import { programExists } from '../../db/reads.js';
import { requestedByToken } from '../../domain/api-tokens.js';
import { apiCaller } from '../access-guard.js';
import type { HttpDeps } from '../deps.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { type ParsedUpload, type UploadKind, UploadParserPool } from '../upload-thread.js';
import { requestOrigin } from '../urls.js';
import { programUuidParam } from './programs.js';

/** Registrar's upload limit (UPLOAD_FILE_MAX_SIZE): a file of more bytes answers 413. */
export const MAX_UPLOAD_BYTES = 5 * 1024 * 1024;

const NO_FILE = 'No file content uploaded: send the CSV as the multipart field file';

/**
 * The bytes of the multipart field `file`, sent exactly once (docs/contract.md, "Bad requests").
 * Other parts are read and dropped: with the parts iterator a part must be consumed before the
 * next one arrives. Reading the whole body before answering also keeps the connection usable for
 * the client's next request.
 */
async function uploadedFile(request: FastifyRequest): Promise<Buffer> {
  if (!request.isMultipart()) throw badRequest(NO_FILE);
  let content: Buffer | null = null;
  let fileParts = 0;
  try {
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue;
      const bytes = await part.toBuffer();
      if (part.fieldname !== 'file') continue;
      fileParts++;
      content = bytes;
    }
  } catch (err) {
    const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
    if (code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new HttpError(413, `Upload too large: the file is over ${MAX_UPLOAD_BYTES} bytes (5 MiB)`);
    }
    if (typeof statusCode === 'number' && statusCode < 500) throw err;
    // Everything here reads the request body, so any other failure is the body's: busboy's
    // "Boundary not found" or "Unexpected end of form" are the client's to fix, not a 500.
    throw badRequest(`the multipart body could not be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (fileParts > 1) throw badRequest(`the multipart field file was sent ${fileParts} times; send one file`);
  if (content === null) throw badRequest(NO_FILE);
  return content;
}

/**
 * Registrar's CSV uploads (docs/contract.md "HTTP", "Uploads"): the file becomes one job on the
 * `enrollments` queue and the answer is `202 { job_id, job_url }`. The job id is chosen here
 * (`upload-<uuid>`, never digits only, so it cannot collide with BullMQ's own numbering), so the
 * job's history rows and result CSV carry the id the caller was given.
 */
export async function registerUploadRoutes(
  api: FastifyInstance,
  { config, database, log, queues, redisTarget }: HttpDeps,
): Promise<void> {
  const { sql } = database;
  const enrollments = queues.find((q) => q.name === 'enrollments');
  if (!enrollments) throw new Error('the enrollments queue is required for the upload routes');
  // Long-lived parser threads, stopped with the server (in-flight requests have finished by then).
  const parsers = new UploadParserPool();
  api.addHook('onClose', () => parsers.close());

  const knownProgram = async (raw: string): Promise<string> => {
    const programUuid = programUuidParam(raw);
    if (!(await programExists(sql, programUuid))) throw notFound(`unknown program ${raw}`);
    return programUuid;
  };

  /**
   * Parses the file and adds its job off the event loop (http/upload-thread.ts): a refused file
   * answers 400 or 413 and leaves no job; an accepted one answers 202 with the job's id and URL.
   */
  const accept = async (
    request: FastifyRequest,
    reply: FastifyReply,
    kind: UploadKind,
    name: string,
    programUuid: string,
    content: Buffer,
  ) => {
    const jobId = `upload-${randomUUID()}`;
    // The upload says who made it (docs/contract.md "Who may do what"), in its history and job status.
    const requestedBy = requestedByToken(apiCaller(request).name);
    // Recorded first, so the job API can answer for the job once BullMQ has forgotten it.
    await recordSubmittedJob(sql, {
      jobId,
      queue: enrollments.name,
      name,
      programUuid,
      requestedBy,
    });
    let added: ParsedUpload;
    try {
      added = await parsers.addUploadJob(kind, programUuid, content, {
        redis: redisTarget,
        prefix: config.QUEUE_PREFIX,
        name,
        jobId,
        requestedBy,
      });
    } catch (err) {
      await forgetSubmittedJob(sql, jobId);
      throw err;
    }
    if (!added.ok) {
      await forgetSubmittedJob(sql, jobId);
      throw new HttpError(added.refusal === 'too-large' ? 413 : 400, added.message);
    }
    log.info({ job: name, jobId, records: added.records }, 'upload accepted');
    return reply.code(202).send({ job_id: jobId, job_url: `${requestOrigin(request)}/api/v1/jobs/${jobId}` });
  };

  // The multipart parser lives in this scope only: the rest of the API takes no multipart bodies.
  await api.register(async (uploads) => {
    await uploads.register(multipart, {
      limits: { fileSize: MAX_UPLOAD_BYTES, files: 10, fields: 50, parts: 60 },
    });

    const write = { config: { access: { scope: 'program', permission: 'write' } as const } };

    uploads.post<{ Params: { program_uuid: string } }>(
      '/v1/programs/:program_uuid/enrollments/upload',
      write,
      async (request, reply) => {
        const content = await uploadedFile(request);
        const programUuid = await knownProgram(request.params.program_uuid);
        return accept(request, reply, 'program', 'write-program-enrollments', programUuid, content);
      },
    );

    uploads.post<{ Params: { program_uuid: string } }>(
      '/v1/programs/:program_uuid/course_enrollments/upload',
      write,
      async (request, reply) => {
        const content = await uploadedFile(request);
        const programUuid = await knownProgram(request.params.program_uuid);
        return accept(request, reply, 'course', 'write-program-course-enrollments-upload', programUuid, content);
      },
    );
  });
}
