/**
 * Registrar's CSV uploads over HTTP, black-box against the running service (real Redis, Postgres
 * and BullMQ): CONTRACT.md "HTTP" (the two upload rows, the job status and result CSV) and
 * "Details that callers rely on" → "Uploads", "Jobs over HTTP", "History rows".
 */
import { describe, expect, it } from 'vitest';
import {
  announceLearner,
  COURSE,
  COURSE_EXTERNAL,
  COURSE_MODES,
  hasPendingStaff,
  historyOfJob,
  isCourseStaff,
  newProgram,
  type ProgramPayload,
  pceOf,
  peOf,
  pesOf,
  watchProgress,
} from './support/fixtures.js';
import { useTestService, waitFor } from './support/service.js';

const COURSE2 = 'course-v1:UoX+CS102+2026';
const COURSE2_EXTERNAL = 'CS102-F26';
const UNKNOWN_COURSE = 'course-v1:Nope+X+1';
const MiB = 1024 * 1024;

const t = useTestService();

/** A program of its own per test, with COURSE (external CS101-F26) and COURSE2 (external CS102-F26). */
function twoCourseProgram(): Promise<ProgramPayload> {
  return newProgram(t, {
    courses: [
      { course_key: COURSE, external_course_key: COURSE_EXTERNAL, modes: COURSE_MODES },
      { course_key: COURSE2, external_course_key: COURSE2_EXTERNAL, modes: ['audit', 'masters'] },
    ],
  });
}

/** A multipart body with the CSV as the file part `field`, as a browser or `curl -F file=@x.csv` sends it. */
function csvForm(csv: string | Blob, field = 'file'): FormData {
  const form = new FormData();
  form.append(field, csv instanceof Blob ? csv : new Blob([csv], { type: 'text/csv' }), 'upload.csv');
  return form;
}

async function post(path: string, body: FormData | string, headers: Record<string, string> = {}) {
  const res = await t.api(path, { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as any };
}

const programUpload = (programUuid: string, csv: string | Blob, headers?: Record<string, string>) =>
  post(`/api/v1/programs/${programUuid}/enrollments/upload`, csvForm(csv), headers);
const courseUpload = (programUuid: string, csv: string | Blob) =>
  post(`/api/v1/programs/${programUuid}/course_enrollments/upload`, csvForm(csv));

interface JobStatusBody {
  job_id: string;
  name: string;
  created: string;
  state: string;
  result: string | null;
  text: string | null;
  error: string | null;
}

/** Polls the job status resource, as the program console does, until the job has finished. */
async function finished(jobId: string, timeoutMs = 60_000): Promise<JobStatusBody> {
  return waitFor(
    async () => {
      const res = await t.api(`/api/v1/jobs/${jobId}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as JobStatusBody;
      return body.state === 'Succeeded' || body.state === 'Failed' ? body : undefined;
    },
    timeoutMs,
    `job ${jobId} to succeed or fail`,
    25,
  );
}

async function resultCsv(jobId: string): Promise<string> {
  const res = await t.api(`/api/v1/jobs/${jobId}/result.csv`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
  return res.text();
}

/** Uploads, expects 202, waits for success and returns the job id and its result CSV. */
async function uploadOk(
  kind: 'program' | 'course',
  programUuid: string,
  csv: string,
  text: string,
): Promise<{ jobId: string; csv: string }> {
  const accepted = kind === 'program' ? await programUpload(programUuid, csv) : await courseUpload(programUuid, csv);
  expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
  const jobId = accepted.body.job_id as string;
  const status = await finished(jobId);
  expect(status, JSON.stringify(status)).toMatchObject({ state: 'Succeeded', text, error: null });
  return { jobId, csv: await resultCsv(jobId) };
}

/** Every job the enrollments queue holds, in any state: a refused upload must add none. */
async function enrollmentJobCount(): Promise<number> {
  const counts = await t.queues.enrollments.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'completed',
    'failed',
    'prioritized',
  );
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

describe('POST /api/v1/programs/{program_uuid}/enrollments/upload', () => {
  it('answers 202 with the job, applies the file as create_or_update and serves the result CSV', async () => {
    const P = await newProgram(t);
    const csv =
      ' Student_Key , STATUS ,Notes\r\n' +
      'learner-b,enrolled,first\r\n' +
      '\r\n' +
      '"key,with comma",pending,"a note, quoted"\r\n' +
      'learner-a,Enrolled,values are not case-folded\r\n' +
      'learner-dup,enrolled\r\n' +
      'LEARNER-DUP,suspended,\r\n' +
      '"quote""d",enrolled,\r\n';
    const accepted = await programUpload(P.program_uuid, csv);
    expect(accepted.status).toBe(202);
    const jobId = accepted.body.job_id as string;
    expect(jobId).toMatch(/^upload-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(accepted.body).toEqual({ job_id: jobId, job_url: `${t.url}/api/v1/jobs/${jobId}` });

    const status = await finished(jobId);
    expect(status).toEqual({
      job_id: jobId,
      name: 'write-program-enrollments',
      created: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      state: 'Succeeded',
      result: `${t.url}/api/v1/jobs/${jobId}/result.csv`,
      text: '207',
      error: null,
      requested_by: 'api:token-1',
    });
    expect(await resultCsv(jobId)).toBe(
      'student_key,status\r\n' +
        'LEARNER-DUP,duplicated\r\n' +
        '"key,with comma",pending\r\n' +
        'learner-a,invalid-status\r\n' +
        'learner-b,enrolled\r\n' +
        'learner-dup,duplicated\r\n' +
        '"quote""d",enrolled\r\n',
    );

    // The PEs, with the program's default curriculum; nothing for the refused learners.
    const curriculum = P.curricula[0]!.curriculum_uuid;
    expect(await peOf(t, P.program_uuid, 'learner-b')).toMatchObject({
      student_key: 'learner-b',
      status: 'enrolled',
      curriculum_uuid: curriculum,
    });
    expect(await peOf(t, P.program_uuid, 'key,with comma')).toMatchObject({
      status: 'pending',
      curriculum_uuid: curriculum,
    });
    expect(await peOf(t, P.program_uuid, 'quote"d')).toMatchObject({ status: 'enrolled' });
    expect(await peOf(t, P.program_uuid, 'learner-a')).toBeUndefined();
    expect(await peOf(t, P.program_uuid, 'learner-dup')).toBeUndefined();

    // The history rows carry the upload's job_id, in Postgres and over HTTP.
    const rows = await historyOfJob(t, jobId);
    expect(rows.map((r) => [r.entity, r.action, r.changes.student_key?.[1]])).toEqual([
      ['program_enrollment', 'created', 'learner-b'],
      ['program_enrollment', 'created', 'key,with comma'],
      ['program_enrollment', 'created', 'quote"d'],
    ]);
    // The bare operator token of API_TOKENS is named by its position (CONTRACT "Who may do what").
    expect(rows.every((r) => r.job_id === jobId && r.requested_by === 'api:token-1')).toBe(true);
    const history = await t.api(
      `/api/v1/programs/${P.program_uuid}/enrollments/${encodeURIComponent('key,with comma')}/history`,
    );
    expect(((await history.json()) as Array<{ job_id: string }>).map((h) => h.job_id)).toEqual([jobId]);
  });

  it('updates existing learners on a second upload (create_or_update) and reports 200', async () => {
    const P = await newProgram(t);
    await uploadOk('program', P.program_uuid, 'student_key,status\nu1,pending\nu2,enrolled\n', '200');
    const second = await uploadOk('program', P.program_uuid, 'student_key,status\nU1,enrolled\nu3,enrolled\n', '200');
    expect(second.csv).toBe('student_key,status\r\nU1,enrolled\r\nu3,enrolled\r\n');
    expect((await pesOf(t, P.program_uuid)).map((pe) => [pe.student_key, pe.status])).toEqual([
      ['u1', 'enrolled'],
      ['u2', 'enrolled'],
      ['u3', 'enrolled'],
    ]);
    const changed = await historyOfJob(t, second.jobId);
    expect(changed.map((r) => [r.action, r.changes.status])).toEqual([
      ['created', [null, 'enrolled']],
      ['changed', ['pending', 'enrolled']],
    ]);
  });

  it('builds job_url from the Host header and X-Forwarded-Proto', async () => {
    const P = await newProgram(t);
    const accepted = await programUpload(P.program_uuid, 'student_key,status\nh1,enrolled\n', {
      'x-forwarded-proto': 'https',
    });
    expect(accepted.status).toBe(202);
    expect(accepted.body.job_url).toBe(`https://${new URL(t.url).host}/api/v1/jobs/${accepted.body.job_id}`);
    await finished(accepted.body.job_id);
  });

  it('answers 204 as the text of a file with a header only, and serves a result CSV of the header', async () => {
    const P = await newProgram(t);
    const { csv } = await uploadOk('program', P.program_uuid, 'student_key,status\r\n\r\n', '204');
    expect(csv).toBe('student_key,status\r\n');
  });

  it('names the missing headers, in the order student_key, status', async () => {
    const P = await newProgram(t);
    const before = await enrollmentJobCount();
    expect(await programUpload(P.program_uuid, 'student_key,state\na,enrolled\n')).toEqual({
      status: 400,
      body: { error: 'CSV is missing headers [status]' },
    });
    expect(await programUpload(P.program_uuid, 'status,learner\nenrolled,a\n')).toEqual({
      status: 400,
      body: { error: 'CSV is missing headers [student_key]' },
    });
    expect(await programUpload(P.program_uuid, 'key,state\na,enrolled\n')).toEqual({
      status: 400,
      body: { error: 'CSV is missing headers [student_key, status]' },
    });
    expect(await programUpload(P.program_uuid, '\n\n')).toEqual({
      status: 400,
      body: { error: 'CSV is missing headers [student_key, status]' },
    });
    expect(await enrollmentJobCount()).toBe(before);
  });

  it('names the file line of missing data, counting the header as line 1 and blank lines as lines', async () => {
    const P = await newProgram(t);
    const before = await enrollmentJobCount();
    const cases: Array<[string, number]> = [
      ['student_key,status\na,enrolled\n\n\nb,\n', 5],
      ['student_key,status\r\n\r\na,enrolled\r\n   ,enrolled\r\n', 4],
      ['student_key,status\na,enrolled\nshort-row\n', 3],
      ['student_key,status\n"multi\nline",enrolled\n\nc,  \n', 5],
      // Blank lines before the header do not count: the header is line 1.
      ['\n Student_Key,Status\na,enrolled\nb\n', 3],
    ];
    for (const [csv, line] of cases) {
      expect(await programUpload(P.program_uuid, csv), csv).toEqual({
        status: 400,
        body: { error: `CSV is missing data at line ${line}` },
      });
    }
    expect(await enrollmentJobCount()).toBe(before);
    expect(await pesOf(t, P.program_uuid)).toEqual([]);
  });

  it('refuses a student_key longer than 255 characters and a file that is not CSV, naming the line', async () => {
    const P = await newProgram(t);
    expect(
      await programUpload(P.program_uuid, `student_key,status\nok,enrolled\n${'k'.repeat(256)},enrolled\n`),
    ).toEqual({
      status: 400,
      body: { error: 'invalid payload: line 3.student_key: must be at most 255 characters' },
    });
    const unclosed = await programUpload(P.program_uuid, 'student_key,status\n"open,enrolled\n');
    expect(unclosed.status).toBe(400);
    expect(unclosed.body.error).toMatch(/^CSV could not be read: /);
    const latin1 = await programUpload(
      P.program_uuid,
      new Blob([Buffer.from('student_key,status\nM\xfcller,enrolled\n', 'latin1')]),
    );
    expect(latin1).toEqual({ status: 400, body: { error: 'CSV is not valid UTF-8' } });
  });

  it('answers 400 when there is no file part named file', async () => {
    const P = await newProgram(t);
    const path = `/api/v1/programs/${P.program_uuid}/enrollments/upload`;
    const wrongField = await post(path, csvForm('student_key,status\na,enrolled\n', 'csv'));
    expect(wrongField).toEqual({ status: 400, body: { error: 'No file content uploaded' } });
    const textField = new FormData();
    textField.append('file', 'student_key,status\na,enrolled\n');
    expect(await post(path, textField)).toEqual({ status: 400, body: { error: 'No file content uploaded' } });
    const json = await post(path, JSON.stringify({ file: 'student_key,status' }), {
      'content-type': 'application/json',
    });
    expect(json).toEqual({ status: 400, body: { error: 'No file content uploaded' } });
  });

  it('answers 400 for a multipart body that cannot be read, 415 for a bare CSV body', async () => {
    const P = await newProgram(t);
    const path = `/api/v1/programs/${P.program_uuid}/enrollments/upload`;
    const noBoundary = await post(path, 'student_key,status\n', { 'content-type': 'multipart/form-data' });
    expect(noBoundary.status).toBe(400);
    expect(noBoundary.body.error).toMatch(/^the multipart body could not be read: /);
    const truncated = await post(
      path,
      '--XX\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nstudent_key,status\na,enrolled\n',
      { 'content-type': 'multipart/form-data; boundary=XX' },
    );
    expect(truncated.status).toBe(400);
    expect(truncated.body.error).toMatch(/^the multipart body could not be read: /);
    const bare = await post(path, 'student_key,status\na,enrolled\n', { 'content-type': 'text/csv' });
    expect(bare.status).toBe(415);
    expect(bare.body).toHaveProperty('error');
    expect(await pesOf(t, P.program_uuid)).toEqual([]);
  });

  it('takes the URL with a trailing slash, as Open edX clients send it', async () => {
    const P = await newProgram(t);
    const accepted = await post(
      `/api/v1/programs/${P.program_uuid.toUpperCase()}/enrollments/upload/`,
      csvForm('student_key,status\nslash1,enrolled\n'),
    );
    expect(accepted.status).toBe(202);
    expect((await finished(accepted.body.job_id)).state).toBe('Succeeded');
    expect(await peOf(t, P.program_uuid, 'slash1')).toMatchObject({ status: 'enrolled' });
  });

  it('answers 404 for an unknown program, whatever the CSV holds', async () => {
    for (const uuid of ['99999999-8888-7777-6666-555555555555', 'not-a-uuid']) {
      const res = await programUpload(uuid, 'no,headers\n');
      expect(res.status, uuid).toBe(404);
      expect(res.body).toEqual({ error: `unknown program ${uuid}` });
    }
  });

  it('takes a file of exactly 5 MiB and answers 413 for one byte more', async () => {
    const P = await newProgram(t);
    const head = 'student_key,status,notes\nbig1,enrolled,';
    const exact = head + 'x'.repeat(5 * MiB - head.length - 1) + '\n';
    expect(Buffer.byteLength(exact)).toBe(5 * MiB);
    await uploadOk('program', P.program_uuid, exact, '200');
    expect(await peOf(t, P.program_uuid, 'big1')).toMatchObject({ status: 'enrolled' });

    const before = await enrollmentJobCount();
    const over = await programUpload(P.program_uuid, exact + 'y');
    expect(over.status).toBe(413);
    expect(over.body).toEqual({ error: expect.stringMatching(/^Upload too large/) });
    // The connection stays usable after the refusal.
    expect((await t.api('/api/v1/jobs/no-such-job')).status).toBe(404);
    expect(await enrollmentJobCount()).toBe(before);
  });

  it('answers 413 for more records than one job takes', async () => {
    const P = await newProgram(t);
    const rows = Array.from({ length: 100_001 }, (_, i) => `k${i},enrolled\n`).join('');
    const res = await programUpload(P.program_uuid, `student_key,status\n${rows}`);
    expect(res).toEqual({ status: 413, body: { error: 'CSV has 100,001 records; one job takes at most 100,000' } });
  });

  it('answers 401 without a valid bearer token', async () => {
    const P = await newProgram(t);
    for (const path of [
      `/api/v1/programs/${P.program_uuid}/enrollments/upload`,
      `/api/v1/programs/${P.program_uuid}/course_enrollments/upload`,
    ]) {
      for (const headers of [{}, { authorization: 'Bearer wrong' }] as Array<Record<string, string>>) {
        const res = await fetch(`${t.url}${path}`, {
          method: 'POST',
          body: csvForm('student_key,status\na,enrolled\n'),
          headers,
        });
        expect(res.status, path).toBe(401);
        expect(await res.json()).toHaveProperty('error');
      }
    }
    expect(await pesOf(t, P.program_uuid)).toEqual([]);
  });

  it('fails the job, as CONTRACT says, for a program with no active curriculum', async () => {
    const P = await newProgram(t, { curricula: [{ is_active: false, course_keys: [COURSE] }] });
    const accepted = await programUpload(P.program_uuid, 'student_key,status\na,enrolled\n');
    expect(accepted.status).toBe(202);
    const status = await finished(accepted.body.job_id);
    expect(status).toMatchObject({
      state: 'Failed',
      result: null,
      text: null,
      error: `program ${P.program_uuid} has no active curriculum`,
    });
    expect((await t.api(`/api/v1/jobs/${accepted.body.job_id}/result.csv`)).status).toBe(404);
  });
});

describe('POST /api/v1/programs/{program_uuid}/course_enrollments/upload', () => {
  it('writes several courses in one job, per course, and prints course_id,student_key,status,course_staff', async () => {
    const P = await twoCourseProgram();
    const realized = await announceLearner(t, 'r1');
    await uploadOk('program', P.program_uuid, 'student_key,status\nr1,enrolled\nw1,enrolled\n', '200');

    const csv =
      'Student_Key,COURSE_ID, Status ,Course_Staff,notes\r\n' +
      'r1,CS101-F26,active,true,by external key\r\n' +
      `w1,${COURSE2},active,true\r\n` +
      // The same learner in another course is not a duplicate.
      `r1,${COURSE2},inactive,,\r\n` +
      '\r\n' +
      'w1,CS101-F26,active,,\r\n' +
      'W1,CS101-F26,inactive,false\r\n' +
      `x1,${UNKNOWN_COURSE},active,true\r\n` +
      `x1,${UNKNOWN_COURSE},inactive,\r\n` +
      '"no,body",CS101-F26,active,\r\n';
    const accepted = await courseUpload(P.program_uuid, csv);
    expect(accepted.status).toBe(202);
    const jobId = accepted.body.job_id as string;
    expect(accepted.body).toEqual({ job_id: jobId, job_url: `${t.url}/api/v1/jobs/${jobId}` });
    expect(await finished(jobId)).toMatchObject({
      job_id: jobId,
      name: 'write-program-course-enrollments-upload',
      state: 'Succeeded',
      result: `${t.url}/api/v1/jobs/${jobId}/result.csv`,
      text: '207',
      error: null,
    });
    expect(await resultCsv(jobId)).toBe(
      'course_id,student_key,status,course_staff\r\n' +
        'CS101-F26,W1,duplicated,false\r\n' +
        'CS101-F26,"no,body",not-in-program,\r\n' +
        'CS101-F26,r1,active,true\r\n' +
        'CS101-F26,w1,duplicated,\r\n' +
        `${UNKNOWN_COURSE},x1,course-not-found,true\r\n` +
        `${COURSE2},r1,inactive,\r\n` +
        `${COURSE2},w1,active,true\r\n`,
    );
    const job = (await t.queues.enrollments.getJob(jobId))!;
    expect(job.returnvalue).toEqual({
      code: 207,
      course_staff_column: true,
      results: [
        { course_id: 'CS101-F26', student_key: 'r1', status: 'active', course_staff: 'true' },
        { course_id: COURSE2, student_key: 'w1', status: 'active', course_staff: 'true' },
        { course_id: COURSE2, student_key: 'r1', status: 'inactive', course_staff: '' },
        { course_id: 'CS101-F26', student_key: 'w1', status: 'duplicated', course_staff: '' },
        { course_id: 'CS101-F26', student_key: 'W1', status: 'duplicated', course_staff: 'false' },
        { course_id: UNKNOWN_COURSE, student_key: 'x1', status: 'course-not-found', course_staff: 'true' },
        { course_id: 'CS101-F26', student_key: 'no,body', status: 'not-in-program', course_staff: '' },
      ],
      counts: { active: 2, inactive: 1, duplicated: 2, 'course-not-found': 1, 'not-in-program': 1 },
    });
    expect(job.progress).toEqual({ done: 8, total: 8 });

    // Realized r1: active in COURSE (named by its external key) with the staff role; inactive in COURSE2, role untouched.
    const r1Course = await pceOf(t, P.program_uuid, 'r1', COURSE);
    expect(r1Course).toMatchObject({ status: 'active', course_key: COURSE });
    expect(r1Course!.course_enrollment_id).not.toBeNull();
    expect(await isCourseStaff(t, realized.user_id, COURSE)).toBe(true);
    expect(await pceOf(t, P.program_uuid, 'r1', COURSE2)).toMatchObject({ status: 'inactive' });
    expect(await isCourseStaff(t, realized.user_id, COURSE2)).toBe(false);
    // Waiting w1: active in COURSE2 with a pending role; nothing in COURSE, where it was duplicated.
    const w1Course2 = await pceOf(t, P.program_uuid, 'w1', COURSE2);
    expect(w1Course2).toMatchObject({ status: 'active', course_enrollment_id: null });
    expect(await hasPendingStaff(t, w1Course2!.id)).toBe(true);
    expect(await pceOf(t, P.program_uuid, 'w1', COURSE)).toBeUndefined();

    // History rows carry the upload's job_id and the course's own key.
    const rows = await historyOfJob(t, jobId);
    const pceRows = rows.filter((r) => r.entity === 'program_course_enrollment');
    expect(pceRows.map((r) => [r.action, r.changes.course_key?.[1], r.changes.status?.[1]])).toEqual([
      ['created', COURSE, 'active'],
      ['created', COURSE2, 'active'],
      ['created', COURSE2, 'inactive'],
    ]);
    expect(rows.every((r) => r.job_id === jobId)).toBe(true);
    const history = await t.api(`/api/v1/programs/${P.program_uuid}/enrollments/w1/history`);
    expect(
      ((await history.json()) as Array<{ entity: string; job_id: string }>).filter(
        (h) => h.entity === 'program_course_enrollment',
      ),
    ).toEqual([expect.objectContaining({ job_id: jobId })]);
  });

  it('prints no course_staff column when the upload had none, and revokes with false', async () => {
    const P = await twoCourseProgram();
    const staff = await announceLearner(t, 's1');
    await uploadOk('program', P.program_uuid, 'student_key,status\ns1,enrolled\n', '200');
    await uploadOk(
      'course',
      P.program_uuid,
      `student_key,course_id,status,course_staff\ns1,${COURSE},active,true\n`,
      '200',
    );
    expect(await isCourseStaff(t, staff.user_id, COURSE)).toBe(true);

    const plain = await uploadOk(
      'course',
      P.program_uuid,
      `course_id,student_key,status\n${COURSE},s1,inactive\nCS101-F26,nobody,active\n`,
      '207',
    );
    expect(plain.csv).toBe(
      `course_id,student_key,status\r\nCS101-F26,nobody,not-in-program\r\n${COURSE},s1,inactive\r\n`,
    );
    // Without the column the role is left alone.
    expect(await isCourseStaff(t, staff.user_id, COURSE)).toBe(true);

    const revoke = await uploadOk(
      'course',
      P.program_uuid,
      `student_key,course_id,status,course_staff\ns1,${COURSE},active,false\n`,
      '200',
    );
    expect(revoke.csv).toBe(`course_id,student_key,status,course_staff\r\n${COURSE},s1,active,false\r\n`);
    expect(await isCourseStaff(t, staff.user_id, COURSE)).toBe(false);

    const empty = await uploadOk('course', P.program_uuid, 'student_key,course_id,status,course_staff\n', '204');
    expect(empty.csv).toBe('course_id,student_key,status,course_staff\r\n');
  });

  it('counts a learner named under a course own key and its external key as duplicated in that course', async () => {
    const P = await twoCourseProgram();
    await uploadOk('program', P.program_uuid, 'student_key,status\nd1,enrolled\nd2,enrolled\n', '200');
    const { csv } = await uploadOk(
      'course',
      P.program_uuid,
      `student_key,course_id,status\nd1,${COURSE},active\nd1,${COURSE_EXTERNAL},active\nd2,${COURSE2},active\n`,
      '207',
    );
    expect(csv).toBe(
      'course_id,student_key,status\r\n' +
        `CS101-F26,d1,duplicated\r\n` +
        `${COURSE},d1,duplicated\r\n` +
        `${COURSE2},d2,active\r\n`,
    );
    expect(await pceOf(t, P.program_uuid, 'd1', COURSE)).toBeUndefined();
  });

  it('answers 422 as the text when every course_id is unknown', async () => {
    const P = await twoCourseProgram();
    const { csv } = await uploadOk(
      'course',
      P.program_uuid,
      `student_key,course_id,status\na,${UNKNOWN_COURSE},active\nb,CS999,active\n`,
      '422',
    );
    expect(csv).toBe(
      `course_id,student_key,status\r\nCS999,b,course-not-found\r\n${UNKNOWN_COURSE},a,course-not-found\r\n`,
    );
  });

  it('refuses missing headers, missing data and course_staff values other than true, false or empty', async () => {
    const P = await twoCourseProgram();
    const before = await enrollmentJobCount();
    const refusals: Array<[string, string]> = [
      ['student_key,status\na,active\n', 'CSV is missing headers [course_id]'],
      ['course,learner,state\n', 'CSV is missing headers [student_key, course_id, status]'],
      [`student_key,course_id,status\na,${COURSE},active\n\nb,,active\n`, 'CSV is missing data at line 4'],
      [
        `student_key,course_id,status,course_staff\na,${COURSE},active,true\nb,${COURSE},active,yes\n`,
        'CSV has an invalid course_staff value at line 3',
      ],
      [
        `student_key,course_id,status,course_staff\n\na,${COURSE},active,TRUE\n`,
        'CSV has an invalid course_staff value at line 3',
      ],
      [
        `student_key,course_id,status,course_staff\na,${COURSE},active,1\n`,
        'CSV has an invalid course_staff value at line 2',
      ],
    ];
    for (const [csv, error] of refusals) {
      expect(await courseUpload(P.program_uuid, csv), csv).toEqual({ status: 400, body: { error } });
    }
    expect(await courseUpload('99999999-8888-7777-6666-555555555555', 'student_key,course_id,status\n')).toEqual({
      status: 404,
      body: { error: 'unknown program 99999999-8888-7777-6666-555555555555' },
    });
    const over = await courseUpload(P.program_uuid, new Blob([`student_key,course_id,status\n${'x'.repeat(5 * MiB)}`]));
    expect(over.status).toBe(413);
    expect(await enrollmentJobCount()).toBe(before);
  });

  it('reports progress over all rows of all courses, at least every 1,000, ending at done == total', async () => {
    const P = await twoCourseProgram();
    const reports = await watchProgress(t);
    try {
      const lines = [
        ...Array.from({ length: 1_300 }, (_, i) => `p${i},${COURSE},active`),
        ...Array.from({ length: 200 }, (_, i) => `q${i},${UNKNOWN_COURSE},active`),
        ...Array.from({ length: 1_100 }, (_, i) => `p${i},${COURSE2_EXTERNAL},active`),
      ];
      const accepted = await courseUpload(P.program_uuid, `student_key,course_id,status\n${lines.join('\n')}\n`);
      expect(accepted.status).toBe(202);
      const jobId = accepted.body.job_id as string;
      expect(await finished(jobId)).toMatchObject({ state: 'Succeeded', text: '422' });
      const job = (await t.queues.enrollments.getJob(jobId))!;
      expect(job.progress).toEqual({ done: 2_600, total: 2_600 });
      expect((job.returnvalue as { counts: unknown }).counts).toEqual({
        'not-in-program': 2_400,
        'course-not-found': 200,
      });

      await reports.ended(jobId);
      const progress = reports.of(jobId);
      expect(progress.length).toBeGreaterThanOrEqual(3);
      expect(progress.every((p) => p.total === 2_600)).toBe(true);
      expect(progress.at(-1)).toEqual({ done: 2_600, total: 2_600 });
      let last = 0;
      for (const p of progress) {
        expect(p.done).toBeGreaterThanOrEqual(last);
        expect(p.done - last).toBeLessThanOrEqual(1_000);
        last = p.done;
      }
    } finally {
      await reports.close();
    }
  });

  it('returns the first result and applies nothing when the same upload job runs again', async () => {
    const P = await twoCourseProgram();
    await uploadOk('program', P.program_uuid, 'student_key,status\ne1,enrolled\n', '200');
    const payload = {
      program_uuid: P.program_uuid,
      course_staff_column: true,
      enrollments: [
        { course_id: COURSE_EXTERNAL, student_key: 'e1', status: 'active', course_staff: 'true' },
        { course_id: COURSE2, student_key: 'e1', status: 'inactive', course_staff: '' },
        { course_id: UNKNOWN_COURSE, student_key: 'e1', status: 'active' },
      ],
    };
    const jobId = 'upload-rerun-1';
    const first = await t.run('enrollments', 'write-program-course-enrollments-upload', payload, { jobId });
    expect(first.state, first.failedReason).toBe('completed');
    const historyRows = (await historyOfJob(t, jobId)).length;
    expect(historyRows).toBeGreaterThan(0);
    await first.job.remove();

    // The same job id again after BullMQ forgot it, even with other rows: the first result, nothing applied.
    const again = await t.run(
      'enrollments',
      'write-program-course-enrollments-upload',
      { ...payload, enrollments: payload.enrollments.slice(0, 1) },
      { jobId },
    );
    expect(again.state, again.failedReason).toBe('completed');
    expect(again.result).toEqual(first.result);
    expect((await historyOfJob(t, jobId)).length).toBe(historyRows);
    expect(first.result).toMatchObject({ code: 207, counts: { active: 1, inactive: 1, 'course-not-found': 1 } });
  });

  it('fails a malformed upload payload at once, as any job with an invalid payload', async () => {
    const P = await twoCourseProgram();
    const done = await t.run('enrollments', 'write-program-course-enrollments-upload', {
      program_uuid: P.program_uuid,
      enrollments: [{ course_id: COURSE, student_key: ' ', status: 'active', course_staff: 'yes' }],
    });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(
      /^invalid payload: enrollments\.0\.student_key: must not be empty; enrollments\.0\.course_staff: /,
    );
    const unknown = await t.run('enrollments', 'write-program-course-enrollments-upload', {
      program_uuid: '99999999-8888-7777-6666-555555555555',
      enrollments: [],
    });
    expect(unknown.failedReason).toBe('unknown program 99999999-8888-7777-6666-555555555555');
  });
});
