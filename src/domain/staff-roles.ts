/**
 * Course staff (docs/rules.md rule 8): `course_staff: true` grants the role, `false` revokes it;
 * for a realized learner on the account itself, for a waiting one as a pending role on the PCE,
 * granted when the PE is linked.
 */
export interface StaffRequest {
  /** true grants, false revokes. */
  grant: boolean;
  /** The learner's account, null while the PE waits. */
  userId: number | null;
  /** The learner's PCE in the course (for a pending role). */
  pceId: number;
}

export interface StaffRoleChanges {
  grant: number[];
  revoke: number[];
  grantPending: number[];
  revokePending: number[];
}

export function staffRoleChanges(requests: readonly StaffRequest[]): StaffRoleChanges {
  const changes: StaffRoleChanges = { grant: [], revoke: [], grantPending: [], revokePending: [] };
  for (const r of requests) {
    if (r.userId !== null) (r.grant ? changes.grant : changes.revoke).push(r.userId);
    else (r.grant ? changes.grantPending : changes.revokePending).push(r.pceId);
  }
  return changes;
}
