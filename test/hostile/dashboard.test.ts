/**
 * docs/contract.md "HTTP", `/admin/queues`, second edition: Bull Board shows job data and results
 * with every email and username as "[redacted]", failed jobs without stack traces, and with
 * DASHBOARD_READ_ONLY (on by default) cannot retry, clean or delete jobs.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { accountCreatedPayload, newAccount, newProgram } from '../support/fixtures.js';
import { ADMIN, type TestService, useTestService } from '../support/service.js';

const basic = { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` };

async function board(t: TestService, path: string, init: RequestInit = {}) {
  const res = await fetch(`${t.url}/admin/queues/api${path}`, {
    ...init,
    headers: { ...basic, ...(init.headers ?? {}) },
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

describe('read-only dashboard (the default)', () => {
  const t = useTestService();

  it('redacts emails and usernames in data and results, and shows no stack trace', async () => {
    const account = {
      ...newAccount(),
      username: `secret-user-${randomUUID()}`,
      email: `secret-${randomUUID()}@example.org`,
    };
    const created = await t.run('accounts', 'account-created', accountCreatedPayload(account, []));
    expect(created.state).toBe('completed');
    const P = await newProgram(t);
    const missing = `nobody-${randomUUID()}`;
    const link = await t.run('enrollments', 'link-program-enrollments', {
      program_uuid: P.program_uuid,
      links: [{ student_key: 'k1', username: missing }],
    });
    expect(JSON.stringify(link.result)).toContain(missing);
    // A failed job: BullMQ keeps a stack trace for it.
    const failed = await t.run('accounts', 'account-created', { ...accountCreatedPayload(account, []), user_id: -1 });
    expect(failed.state).toBe('failed');
    expect(failed.job.stacktrace?.length).toBeGreaterThan(0);

    const pages = [
      await board(t, `/queues/accounts/${created.job.id}`),
      await board(t, `/queues/enrollments/${link.job.id}`),
      await board(t, `/queues/accounts/${failed.job.id}`),
      await board(t, '/queues?activeQueue=accounts&status=latest&page=1'),
      await board(t, '/queues?activeQueue=accounts&status=failed&page=1'),
      await board(t, '/queues?activeQueue=enrollments&status=completed&page=1'),
    ];
    for (const page of pages) {
      expect(page.status).toBe(200);
      for (const secret of [account.username, account.email, missing]) expect(page.text).not.toContain(secret);
    }
    expect(pages[0]!.json().job.data).toMatchObject({
      username: '[redacted]',
      email: '[redacted]',
      user_id: account.user_id,
    });
    expect(pages[1]!.json().job.data.links[0]).toEqual({ student_key: 'k1', username: '[redacted]' });
    expect(JSON.stringify(pages[1]!.json().job.returnValue)).toContain('[redacted]');
    const failedView = pages[2]!.json().job;
    expect(failedView.stacktrace).toEqual([]);
    expect(failedView.failedReason).toMatch(/^invalid payload: user_id/);
    expect(pages[4]!.text).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });

  it('refuses retry, clean, delete and add', async () => {
    const failed = await t.run('enrollments', 'retire-learner', { user_id: 0 });
    expect(failed.state).toBe('failed');
    const id = failed.job.id!;
    for (const [method, path] of [
      ['PUT', `/queues/enrollments/${id}/retry`],
      ['PUT', `/queues/enrollments/${id}/clean`],
      ['PUT', '/queues/enrollments/retry/failed'],
      ['PUT', '/queues/enrollments/clean/failed'],
      ['PUT', '/queues/enrollments/empty'],
      ['PUT', '/queues/enrollments/obliterate'],
      ['POST', '/queues/enrollments/add'],
    ] as const) {
      const res = await board(t, path, { method, body: '{}', headers: { 'content-type': 'application/json' } });
      expect(res.status, `${method} ${path}`).toBe(405);
    }
    expect(await failed.job.getState()).toBe('failed');
    const listing = (await board(t, '/queues?activeQueue=enrollments&status=failed&page=1')).json();
    expect(listing.queues.every((q: { readOnlyMode: boolean }) => q.readOnlyMode)).toBe(true);
  });
});

describe('DASHBOARD_READ_ONLY=off', () => {
  const t = useTestService({ DASHBOARD_READ_ONLY: 'off' });

  it('lets the operator clean a failed job', async () => {
    const failed = await t.run('enrollments', 'retire-learner', { user_id: 0 });
    const res = await board(t, `/queues/enrollments/${failed.job.id}/clean`, { method: 'PUT' });
    expect(res.status).toBe(204);
    expect(await t.queues.enrollments.getJob(failed.job.id!)).toBeUndefined();
  });
});
