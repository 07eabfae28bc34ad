import { beforeAll, describe, expect, it } from 'vitest';
import { useTestService } from './support/service.js';

const PROGRAM = '00000000-1111-2222-3333-aaaaaaaaaaaa';
const CURRICULUM = 'aaaaaaaa-1111-2222-3333-aaaaaaaaaaaa';
const COURSE = 'course-v1:UoX+IE101+2026';

/**
 * A record that Postgres refuses for a lasting reason becomes `internal-error`; the rest of the
 * job still applies. The refusal is real: a trigger in this test's own database rejects one key,
 * as a constraint added by an operator (or a bug) would.
 */
describe('a record that cannot be applied', () => {
  const t = useTestService({ WRITE_CHUNK_SIZE: '50' });
  beforeAll(async () => {
    await t.run('enrollments', 'upsert-program', {
      program_uuid: PROGRAM,
      organization_key: 'UoX',
      curricula: [{ curriculum_uuid: CURRICULUM, is_active: true, course_keys: [COURSE] }],
    });
    await t.sql.unsafe(`
      create function refuse_poison() returns trigger language plpgsql as $$
      begin
        if new.student_key = 'poison' then raise exception 'poison refused' using errcode = '22023'; end if;
        return new;
      end $$;
      create trigger refuse_poison before insert on program_enrollments for each row execute function refuse_poison();`);
  });

  it('gets internal-error while the other records of its chunk and job apply', async () => {
    const keys = Array.from({ length: 120 }, (_, i) => `learner-${i}`);
    keys.splice(70, 0, 'poison');
    const done = await t.run(
      'enrollments',
      'write-program-enrollments',
      {
        program_uuid: PROGRAM,
        action: 'create',
        enrollments: keys.map((k) => ({ student_key: k, status: 'enrolled' })),
      },
      { attempts: 1 },
    );
    expect(done.state).toBe('completed');
    expect(done.result.results.poison).toBe('internal-error');
    expect(done.result.counts).toEqual({ enrolled: 120, 'internal-error': 1 });
    expect(done.result.code).toBe(207);
    const [{ n }] =
      (await t.sql`select count(*)::int as n from program_enrollments where program_uuid = ${PROGRAM}`) as any;
    expect(n).toBe(120);
    const [{ h }] = (await t.sql`select count(*)::int as h from history where entity = 'program_enrollment'`) as any;
    expect(h).toBe(120);
  });

  it('refuses NUL characters in the payload, naming the field', async () => {
    const done = await t.run('enrollments', 'write-program-enrollments', {
      program_uuid: PROGRAM,
      action: 'create',
      enrollments: [
        { student_key: 'ok', status: 'enrolled' },
        { student_key: 'a\u0000b', status: 'enrolled' },
      ],
    });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toBe('invalid payload: enrollments.1.student_key: must not contain NUL characters');
  });
});
