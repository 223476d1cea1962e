// Names the provider gives: the random part of a server's name, and this process's
// instance id (the instance tag on the servers it creates).

const RANDOM_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `length` random characters of [a-z0-9]. */
export function randomSuffix(length = 8): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += RANDOM_ALPHABET[b % RANDOM_ALPHABET.length];
  return out;
}

/** A new instance id: the host's name (where it is known, cut to 40 characters) and 6 random characters. */
export function newInstanceId(hostname = process.env.HOSTNAME ?? ""): string {
  const host = hostname.toLowerCase().replace(/[^a-z0-9.-]/g, "-").slice(0, 40);
  return host ? `${host}-${randomSuffix(6)}` : randomSuffix(12);
}
