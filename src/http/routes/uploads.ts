import { randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forgetSubmittedJob, recordSubmittedJob } from '../../db/job-ledger.js';
import { programExists } from '../../db/reads.js';
import { requestedByToken } from '../../domain/api-tokens.js';
import { UploadCsvError } from '../../uploads/read-csv.js';
import { courseUploadPayload, programUploadPayload, UploadTooLargeError } from '../../uploads/upload-payloads.js';
import { apiCaller } from '../access-guard.js';
import type { HttpDeps } from '../deps.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { requestOrigin } from '../urls.js';
import { programUuidParam } from './programs.js';

/** Registrar's upload limit (UPLOAD_FILE_MAX_SIZE): a file of more bytes answers 413. */
export const MAX_UPLOAD_BYTES = 5 * 1024 * 1024;

const NO_FILE = 'No file content uploaded';

/**
 * The bytes of the multipart field `file`. Other parts are read and dropped: with the parts
 * iterator a part must be consumed before the next one arrives. Reading the whole body before
 * answering also keeps the connection usable for the client's next request.
 */
async function uploadedFile(request: FastifyRequest): Promise<Buffer> {
  if (!request.isMultipart()) throw badRequest(NO_FILE);
  let content: Buffer | null = null;
  try {
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue;
      const bytes = await part.toBuffer();
      if (part.fieldname === 'file' && content === null) content = bytes;
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
  if (content === null) throw badRequest(NO_FILE);
  return content;
}

/** The file as text; a byte sequence that is not UTF-8 would otherwise turn into U+FFFD in keys. */
function csvText(content: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    throw badRequest('CSV is not valid UTF-8');
  }
}

/** Runs a CSV → payload mapping, answering its refusals: 400 for the file's content, 413 for its size. */
function payloadFrom<P>(build: () => P): P {
  try {
    return build();
  } catch (err) {
    if (err instanceof UploadCsvError) throw badRequest(err.message);
    if (err instanceof UploadTooLargeError) throw new HttpError(413, err.message);
    throw err;
  }
}

/**
 * Registrar's CSV uploads (docs/contract.md "HTTP", "Uploads"): the file becomes one job on the
 * `enrollments` queue and the answer is `202 { job_id, job_url }`. The job id is chosen here
 * (`upload-<uuid>`, never digits only, so it cannot collide with BullMQ's own numbering), so the
 * job's history rows and result CSV carry the id the caller was given.
 */
export async function registerUploadRoutes(api: FastifyInstance, { database, log, queues }: HttpDeps): Promise<void> {
  const { sql } = database;
  const enrollments = queues.find((q) => q.name === 'enrollments');
  if (!enrollments) throw new Error('the enrollments queue is required for the upload routes');

  const knownProgram = async (raw: string): Promise<string> => {
    const programUuid = programUuidParam(raw);
    if (!(await programExists(sql, programUuid))) throw notFound(`unknown program ${raw}`);
    return programUuid;
  };

  const accept = async (
    request: FastifyRequest,
    reply: FastifyReply,
    name: string,
    payload: { program_uuid: string; enrollments: unknown[] },
  ) => {
    const jobId = `upload-${randomUUID()}`;
    // The upload says who made it (docs/contract.md "Who may do what"), in its history and job status.
    const requestedBy = requestedByToken(apiCaller(request).name);
    // Recorded first, so the job API can answer for the job once BullMQ has forgotten it.
    await recordSubmittedJob(sql, {
      jobId,
      queue: enrollments.name,
      name,
      programUuid: payload.program_uuid,
      requestedBy,
    });
    try {
      await enrollments.add(name, { ...payload, requested_by: requestedBy }, { jobId });
    } catch (err) {
      await forgetSubmittedJob(sql, jobId);
      throw err;
    }
    log.info({ job: name, jobId, records: payload.enrollments.length }, 'upload accepted');
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
        const payload = payloadFrom(() => programUploadPayload(programUuid, csvText(content)));
        return accept(request, reply, 'write-program-enrollments', payload);
      },
    );

    uploads.post<{ Params: { program_uuid: string } }>(
      '/v1/programs/:program_uuid/course_enrollments/upload',
      write,
      async (request, reply) => {
        const content = await uploadedFile(request);
        const programUuid = await knownProgram(request.params.program_uuid);
        const payload = payloadFrom(() => courseUploadPayload(programUuid, csvText(content)));
        return accept(request, reply, 'write-program-course-enrollments-upload', payload);
      },
    );
  });
}
