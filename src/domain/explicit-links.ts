/**
 * The support tool's explicit linking (docs/rules.md rule 10): the per-key error messages, checked in the
 * order docs/contract.md gives (given twice, no such user, no such PE, already linked to that account,
 * the account already has a PE in the program).
 */
export const linkErrors = {
  givenTwice: (key: string) => `external user key ${key} provided multiple times`,
  noUser: (username: string) => `No user found with username ${username}`,
  noEnrollment: (programUuid: string, key: string) =>
    `No program enrollment found for program uuid=${programUuid} and external student key=${key}`,
  alreadyLinked: (key: string, username: string) =>
    `Program enrollment with external_student_key=${key} is already linked to target account username=${username}`,
  hasEnrollment: (username: string, programUuid: string) =>
    `User ${username} already has a program enrollment in program uuid=${programUuid}`,
};

export interface LinkState {
  userId: number | null;
  enrollment: { id: number; userId: number | null } | null;
  /** The PE id the account already holds in this program, if any. */
  accountEnrollmentId: number | null;
}

/** The error for one (non-duplicated) link, or null when it may be applied. */
export function checkLink(programUuid: string, key: string, username: string, state: LinkState): string | null {
  if (state.userId === null) return linkErrors.noUser(username);
  if (state.enrollment === null) return linkErrors.noEnrollment(programUuid, key);
  if (state.enrollment.userId === state.userId) return linkErrors.alreadyLinked(key, username);
  if (state.accountEnrollmentId !== null) return linkErrors.hasEnrollment(username, programUuid);
  return null;
}
