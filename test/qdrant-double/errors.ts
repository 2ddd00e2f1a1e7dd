/**
 * Errors the double answers with: real Qdrant's status codes and message
 * prefixes ("Not found: …", "Wrong input: …"), so clients see what they would
 * see from a real server.
 */
export class QdrantApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function collectionNotFound(name: string): QdrantApiError {
  return new QdrantApiError(404, `Not found: Collection \`${name}\` doesn't exist!`);
}

export function wrongInput(description: string): QdrantApiError {
  return new QdrantApiError(400, `Wrong input: ${description}`);
}

export function formatError(description: string): QdrantApiError {
  return new QdrantApiError(400, `Format error in JSON body: ${description}`);
}

/** For request features real Qdrant has but this double does not implement. */
export function notSupported(feature: string): QdrantApiError {
  return new QdrantApiError(400, `Wrong input: ${feature} is not supported by the Qdrant test double`);
}
