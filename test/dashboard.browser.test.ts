/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core): it asks for
 * credentials, lists both queues, shows a completed write and an account event with emails and
 * usernames as "[redacted]" (docs/contract.md "HTTP"), and a failed job without its stack trace.
 * Screenshots go to test/artifacts/ (git-ignored).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newAccount, uniqueKey, useProgram } from './support/fixtures.js';
import { ADMIN, useTestService } from './support/service.js';

const artifacts = path.resolve(import.meta.dirname, 'artifacts');
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('Bull Board in a browser', () => {
  const t = useTestService();
  const program = useProgram(t);
  let browser: Browser;
  const account = newAccount('dash');
  const key = uniqueKey('dash');
  const ids = { write: `dash-write-${key}`, account: `dash-account-${key}`, failed: `dash-failed-${key}` };

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    const write = await t.run(
      'enrollments',
      'write-program-enrollments',
      { program_uuid: program.program_uuid, action: 'create', enrollments: [{ student_key: key, status: 'enrolled' }] },
      { jobId: ids.write },
    );
    expect(write.state).toBe('completed');
    const event = await t.run(
      'accounts',
      'account-created',
      {
        event_id: ids.account,
        user_id: account.user_id,
        username: account.username,
        email: account.email,
        identities: [{ organization_key: program.organization_key, external_user_key: key }],
      },
      { jobId: ids.account },
    );
    expect(event.state).toBe('completed');
    const failed = await t.run(
      'enrollments',
      'write-program-enrollments',
      { program_uuid: '99999999-2222-3333-4444-555555555555', action: 'create', enrollments: [] },
      { jobId: ids.failed },
    );
    expect(failed.state).toBe('failed');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
  });
  afterAll(async () => {
    await browser?.close();
  });

  const signedIn = async (): Promise<Page> => {
    const context = await browser.newContext({ httpCredentials: { username: ADMIN.user, password: ADMIN.password } });
    return context.newPage();
  };

  it('asks for credentials', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Headless chromium has no dialog to ask with: a Basic challenge without credentials to give
    // ends the navigation with this error, which is the browser being asked for them.
    const navigation = await page.goto(`${t.url}/admin/queues`).catch((err: Error) => err);
    expect(String(navigation)).toContain('net::ERR_INVALID_AUTH_CREDENTIALS');
    await page.screenshot({ path: path.join(artifacts, 'dashboard-401.png') });
    const answer = await context.request.get(`${t.url}/admin/queues`);
    expect(answer.status()).toBe(401);
    expect(answer.headers()['www-authenticate']).toMatch(/^Basic realm=/);
    await context.close();
  });

  it('lists both queues', async () => {
    const page = await signedIn();
    const response = await page.goto(`${t.url}/admin/queues`);
    expect(response?.status()).toBe(200);
    await expect
      .poll(async () => page.locator('body').innerText(), { timeout: 30_000 })
      .toMatch(/accounts[\s\S]*enrollments|enrollments[\s\S]*accounts/);
    await page.screenshot({ path: path.join(artifacts, 'dashboard-queues.png'), fullPage: true });
  });

  /** The job's page, its text once the job has rendered. */
  async function jobPage(page: Page, queue: string, id: string, shot: string): Promise<string> {
    await page.goto(`${t.url}/admin/queues/queue/${queue}/${id}`);
    await expect.poll(async () => page.locator('body').innerText(), { timeout: 30_000 }).toContain(id);
    const data = page
      .getByRole('button', { name: /^Data$/ })
      .or(page.getByText(/^Data$/))
      .first();
    if (await data.isVisible()) await data.click();
    await page.screenshot({ path: path.join(artifacts, shot), fullPage: true });
    return page.locator('body').innerText();
  }

  it('opens a completed write-program-enrollments job with its data', async () => {
    const page = await signedIn();
    const text = await jobPage(page, 'enrollments', ids.write, 'dashboard-write.png');
    expect(text).toContain('write-program-enrollments');
    expect(text).toContain(key);
  });

  it('opens an account-created job whose data shows [redacted] for the email and username', async () => {
    const page = await signedIn();
    const text = await jobPage(page, 'accounts', ids.account, 'dashboard-account-created.png');
    expect(text).toContain('account-created');
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(account.email);
    expect(text).not.toContain(account.username);
  });

  it('shows a failed job with its reason and no stack trace', async () => {
    const page = await signedIn();
    const text = await jobPage(page, 'enrollments', ids.failed, 'dashboard-failed.png');
    const error = page
      .getByRole('button', { name: /^(Error|Stacktrace)$/ })
      .or(page.getByText(/^(Error|Stacktrace)$/))
      .first();
    if (await error.isVisible()) await error.click();
    const all = `${text}\n${await page.locator('body').innerText()}`;
    await page.screenshot({ path: path.join(artifacts, 'dashboard-failed-error.png'), fullPage: true });
    expect(all).toContain('unknown program 99999999-2222-3333-4444-555555555555');
    expect(all).not.toMatch(/\n\s*at .+:\d+:\d+/);
    expect(all).not.toContain('node_modules');
  });
});
