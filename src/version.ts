// Filled in at compile time by scripts/build.ts (bun build --define); the
// fallbacks apply when running from source.
declare const BUILD_VERSION: string | undefined;
declare const BUILD_COMMIT: string | undefined;

export const version: string = typeof BUILD_VERSION === "string" ? BUILD_VERSION : "0.0.0-dev";
export const commit: string = typeof BUILD_COMMIT === "string" ? BUILD_COMMIT : "unknown";
