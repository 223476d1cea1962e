// Where the cloudscale.ch API is and the token for it: from the command line and the
// environment, never from the configuration file (the file may be shared; the token may not).
import { readFileSync } from "node:fs";
import { ConfigError } from "./config";

export interface ApiSettings {
  token: string;
  url: string;
}

/**
 * The API token and URL. The token comes from, in this order: the file given with
 * --token-file (an explicit flag wins over the environment), CLOUDSCALE_API_TOKEN, the
 * file named by CLOUDSCALE_API_TOKEN_FILE. The URL from CLOUDSCALE_API_URL.
 */
export function apiSettings(env: Record<string, string | undefined>, tokenFile?: string): ApiSettings {
  const fromFile = (file: string) => {
    try {
      return readFileSync(file, "utf8").trim();
    } catch (e) {
      throw new ConfigError([`cannot read the API token file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]);
    }
  };
  let token = tokenFile ? fromFile(tokenFile) : (env.CLOUDSCALE_API_TOKEN?.trim() ?? "");
  if (!tokenFile && !token && env.CLOUDSCALE_API_TOKEN_FILE) token = fromFile(env.CLOUDSCALE_API_TOKEN_FILE);
  if (!token) {
    throw new ConfigError(["no API token: set CLOUDSCALE_API_TOKEN, or pass --token-file FILE (or CLOUDSCALE_API_TOKEN_FILE)"]);
  }
  const url = (env.CLOUDSCALE_API_URL?.trim() || "https://api.cloudscale.ch/v1").replace(/\/+$/, "");
  if (!/^https?:\/\//.test(url)) throw new ConfigError([`CLOUDSCALE_API_URL must start with http:// or https:// (got "${url}")`]);
  return { token, url };
}
