import { describe, expect, it } from 'vitest';
import { courseEffectOf, courseEffectsOf, courseEnrollmentChanges } from '../../src/domain/course-effects.js';
import { applyCourseEffects, type CourseEnrollmentState, pairKey } from '../../src/domain/course-enrollment.js';

const C = 'course-v1:X+Y+Z';

describe('which course effect a PCE change emits', () => {
  it('a PCE of a waiting learner touches no CE', () => {
    expect(courseEffectOf({ on: 'created', pceId: -1, userId: null, courseKey: C, status: 'active' })).toBeNull();
    expect(
      courseEffectOf({ on: 'status', pceId: 3, userId: null, ceId: null, courseKey: C, status: 'inactive' }),
    ).toBeNull();
  });

  it('a PCE that gets an account realizes its CE', () => {
    expect(courseEffectOf({ on: 'created', pceId: -1, userId: 5, courseKey: C, status: 'active' })).toEqual({
      kind: 'realize',
      pceId: -1,
      userId: 5,
      courseKey: C,
      status: 'active',
    });
    expect(courseEffectOf({ on: 'linked', pceId: 4, userId: 5, courseKey: C, status: 'inactive' })).toEqual({
      kind: 'realize',
      pceId: 4,
      userId: 5,
      courseKey: C,
      status: 'inactive',
    });
  });

  it('a status change moves the CE, or realizes it when the PCE has none yet', () => {
    expect(courseEffectOf({ on: 'status', pceId: 3, userId: 5, ceId: 9, courseKey: C, status: 'inactive' })?.kind).toBe(
      'status',
    );
    expect(
      courseEffectOf({ on: 'status', pceId: 3, userId: 5, ceId: null, courseKey: C, status: 'active' })?.kind,
    ).toBe('realize');
  });

  it('an unlinked PCE detaches from its CE, and one without a CE emits nothing', () => {
    expect(courseEffectOf({ on: 'unlinked', pceId: 3, userId: 5, ceId: 9, courseKey: C })).toEqual({
      kind: 'detach',
      pceId: 3,
      userId: 5,
      courseKey: C,
    });
    expect(courseEffectOf({ on: 'unlinked', pceId: 3, userId: 5, ceId: null, courseKey: C })).toBeNull();
    expect(
      courseEffectsOf([
        { on: 'unlinked', pceId: 3, userId: 5, ceId: null, courseKey: C },
        { on: 'linked', pceId: 4, userId: 5, courseKey: C, status: 'active' },
      ]).map((e) => e.pceId),
    ).toEqual([4]);
  });
});

describe('course enrollment rules', () => {
  const ce = (mode: string, isActive: boolean, holders: Array<[number, 'active' | 'inactive']> = []) =>
    new Map<string, CourseEnrollmentState>([
      [pairKey(5, C), { id: 9, userId: 5, courseKey: C, mode, isActive, holders: new Map(holders) }],
    ]);

  it('realizing creates an active masters CE when there is none', () => {
    const states = new Map<string, CourseEnrollmentState>();
    applyCourseEffects(states, [{ kind: 'realize', pceId: 1, userId: 5, courseKey: C, status: 'active' }], new Map());
    expect(states.get(pairKey(5, C))).toMatchObject({ id: null, mode: 'masters', isActive: true });
  });

  it('realizing converts an active audit CE and keeps a verified one, with a note', () => {
    const audit = ce('audit', true);
    applyCourseEffects(audit, [{ kind: 'realize', pceId: 1, userId: 5, courseKey: C, status: 'active' }], new Map());
    expect(audit.get(pairKey(5, C))!.mode).toBe('masters');
    const verified = ce('verified', true);
    const { notes } = applyCourseEffects(
      verified,
      [{ kind: 'realize', pceId: 1, userId: 5, courseKey: C, status: 'active' }],
      new Map(),
    );
    expect(verified.get(pairKey(5, C))!.mode).toBe('verified');
    expect(notes).toHaveLength(1);
  });

  it('an inactive PCE keeps the CE active while another active PCE holds it', () => {
    const states = ce('masters', true, [[2, 'active']]);
    applyCourseEffects(states, [{ kind: 'status', pceId: 1, userId: 5, courseKey: C, status: 'inactive' }], new Map());
    expect(states.get(pairKey(5, C))!.isActive).toBe(true);
    applyCourseEffects(states, [{ kind: 'status', pceId: 2, userId: 5, courseKey: C, status: 'inactive' }], new Map());
    expect(states.get(pairKey(5, C))!.isActive).toBe(false);
  });

  it('detaching deactivates the CE and moves it to audit where the course offers it', () => {
    const states = ce('masters', true, [[1, 'active']]);
    applyCourseEffects(
      states,
      [{ kind: 'detach', pceId: 1, userId: 5, courseKey: C }],
      new Map([[C, ['audit', 'masters']]]),
    );
    expect(states.get(pairKey(5, C))).toMatchObject({ mode: 'audit', isActive: false });
  });

  it('reports the fields of a CE that changed, and null when none did', () => {
    expect(courseEnrollmentChanges({ mode: 'audit', isActive: true }, { mode: 'masters', isActive: true })).toEqual({
      mode: ['audit', 'masters'],
    });
    expect(courseEnrollmentChanges({ mode: 'audit', isActive: true }, { mode: 'audit', isActive: false })).toEqual({
      is_active: [true, false],
    });
    expect(courseEnrollmentChanges({ mode: 'audit', isActive: true }, { mode: 'audit', isActive: true })).toBeNull();
  });
});
