/**
 * An error that answers with its own status: the server's error handler sends `{ error: message }`
 * for any status below 500, so routes throw these instead of building replies by hand.
 */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HttpError(400, message);
export const notFound = (message: string) => new HttpError(404, message);
