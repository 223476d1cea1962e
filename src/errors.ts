// The provider's own errors: what went wrong, in the domain's words. The core (the
// reconciler, deletion, the provider) throws these and never a transport's error;
// the gRPC service maps each kind to its status code at the edge (service.ts).

export type ProviderErrorKind =
  /** No such node group, or nothing known to price. */
  | "not-found"
  /** The request itself is wrong: a bad delta, a node that is not of this group, a bad pod. */
  | "invalid-argument"
  /** The request would take a group beyond its max. */
  | "out-of-range"
  /** The request cannot be done in the group's state: below min, nothing left to cancel. */
  | "failed-precondition"
  /** The server is not ours: it does not carry this provider's tags. */
  | "not-ours"
  /** Not now: the view is stale, the startup grace runs, a creation is on its way, the API failed. */
  | "unavailable"
  /** The API refused the provider's token. */
  | "cloud-auth"
  /** The caller gave up (its deadline passed or it cancelled) before the answer was ready. */
  | "deadline-exceeded"
  /** Not offered: the group has no options of its own. */
  | "unimplemented";

export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}
