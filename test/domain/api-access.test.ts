/**
 * The access decision of the HTTP API (docs/contract.md "Who may do what"), pure: every kind of
 * route × every kind of caller × the organization the request concerns (the caller's, another, or
 * none: an unknown program, or a job about no program) → allowed (200), 403 or 404.
 */
import { describe, expect, it } from 'vitest';
import { type ApiCaller, decideAccess, permissionsOn, type RouteAccess } from '../../src/domain/api-access.js';
import { hashApiToken } from '../../src/domain/api-tokens.js';

describe('the access decision (pure)', () => {
  const operator: ApiCaller = { kind: 'operator', name: 'ops' };
  const reader: ApiCaller = { kind: 'partner', name: 'r', organizations: ['UoX', 'UoZ'], permission: 'read' };
  const writer: ApiCaller = { kind: 'partner', name: 'w', organizations: ['UoX'], permission: 'write' };
  const routes: Array<[string, RouteAccess]> = [
    ['any', { scope: 'any' }],
    ['operator', { scope: 'operator' }],
    ['program read', { scope: 'program', permission: 'read' }],
    ['program write', { scope: 'program', permission: 'write' }],
    ['job', { scope: 'job' }],
  ];
  const targets: Array<[string, string | null]> = [
    ['UoX', 'UoX'],
    ['UoY', 'UoY'],
    ['none', null],
  ];
  // route × caller × target organization → status (200 = allowed).
  const expected: Record<string, Record<string, [number, number, number]>> = {
    any: { operator: [200, 200, 200], reader: [200, 200, 200], writer: [200, 200, 200] },
    operator: { operator: [200, 200, 200], reader: [403, 403, 403], writer: [403, 403, 403] },
    'program read': { operator: [200, 200, 200], reader: [200, 403, 404], writer: [200, 403, 404] },
    'program write': { operator: [200, 200, 200], reader: [403, 403, 404], writer: [200, 403, 404] },
    job: { operator: [200, 200, 200], reader: [200, 404, 404], writer: [200, 404, 404] },
  };
  for (const [routeName, access] of routes) {
    for (const [callerName, caller] of [
      ['operator', operator],
      ['reader', reader],
      ['writer', writer],
    ] as const) {
      it(`${routeName} × ${callerName}`, () => {
        const statuses = targets.map(([, organizationKey]) => {
          const decision = decideAccess(access, caller, { organizationKey }, 'program p');
          return decision.allow ? 200 : decision.status;
        });
        expect(statuses).toEqual(expected[routeName]![callerName]);
      });
    }
  }
});

describe('permissions and digests', () => {
  it('gives operators both permissions everywhere and partners theirs on their organizations only', () => {
    expect(permissionsOn({ kind: 'operator', name: 'ops' }, 'UoY')).toEqual(['read', 'write']);
    const writer: ApiCaller = { kind: 'partner', name: 'w', organizations: ['UoX'], permission: 'write' };
    expect(permissionsOn(writer, 'UoX')).toEqual(['read', 'write']);
    expect(permissionsOn(writer, 'uox')).toEqual([]);
    expect(permissionsOn({ ...writer, permission: 'read' }, 'UoX')).toEqual(['read']);
  });

  it('stores the lowercase hex SHA-256 of the token', () => {
    expect(hashApiToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
