import { describe, expect, it } from 'vitest';
import { staffRoleChanges } from '../../src/domain/staff-roles.js';

describe('staff role grant vs pending', () => {
  it('grants and revokes on the account of a realized learner, pending on the PCE of a waiting one', () => {
    expect(
      staffRoleChanges([
        { grant: true, userId: 1, pceId: 10 },
        { grant: false, userId: 2, pceId: 11 },
        { grant: true, userId: null, pceId: 12 },
        { grant: false, userId: null, pceId: 13 },
      ]),
    ).toEqual({ grant: [1], revoke: [2], grantPending: [12], revokePending: [13] });
  });

  it('changes nothing without requests', () => {
    expect(staffRoleChanges([])).toEqual({ grant: [], revoke: [], grantPending: [], revokePending: [] });
  });
});
