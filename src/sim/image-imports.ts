// Custom image imports, as the real API takes them (cloudscale-go-sdk custom_image_imports.go and
// custom_images.go; terraform-provider-cloudscale docs/resources/custom_image.md):
//   POST /v1/custom-images/import   {url, name, slug?, user_data_handling, zones, firmware_type?,
//                                    source_format? (ignored: the API detects it), tags?}
//     → 201 {href, uuid, custom_image: {href, uuid, name}, url, status: "started", error_message, tags}
//   GET  /v1/custom-images/import[/<uuid>]   the imports; status "success" once the image exists
// The simulator downloads nothing: the custom image appears at once, with the fields the request
// gave (`user_data_handling` decides what a server of it receives as user-data), and the import
// reads "success" from then on.

import { isUuid, type Catalog, type CustomImage } from "./catalog.ts";
import { fail, ok, type Result } from "./records.ts";
import { tagsError, typeName } from "./requests.ts";

export interface ImageImport {
  uuid: string;
  url: string;
  customImage: string;
  tags: Record<string, string>;
}

const REQUIRED = "This field is required.";
const choice = (v: unknown) => `"${String(v)}" is not a valid choice.`;

export class ImageImports {
  readonly imports = new Map<string, ImageImport>();

  constructor(private readonly catalog: Catalog) {}

  reset(): void {
    this.imports.clear();
  }

  create(body: unknown, createdAt: string): Result<ImageImport> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return fail(400, { detail: `Invalid data. Expected a dictionary, but got ${typeName(body)}.` });
    }
    const b = body as Record<string, unknown>;
    const errs: Record<string, string> = {};
    const text = (key: string, required: boolean) => {
      const v = b[key];
      if (v === undefined || v === null) {
        if (required) errs[key] = REQUIRED;
      } else if (typeof v !== "string") errs[key] = "Not a valid string.";
      else if (v.trim() === "") errs[key] = "This field may not be blank.";
    };
    text("url", true);
    text("name", true);
    text("slug", false);
    if (typeof b.url === "string" && b.url.trim() && !/^https?:\/\/[^\s/]+\S*$/.test(b.url)) errs.url = "Enter a valid URL.";
    if (b.user_data_handling === undefined) errs.user_data_handling = REQUIRED;
    else if (b.user_data_handling !== "pass-through" && b.user_data_handling !== "extend-cloud-config") errs.user_data_handling = choice(b.user_data_handling);
    if (b.firmware_type !== undefined && b.firmware_type !== "bios" && b.firmware_type !== "uefi") errs.firmware_type = choice(b.firmware_type);
    if (b.zones === undefined) errs.zones = REQUIRED;
    else if (!Array.isArray(b.zones) || b.zones.length === 0) errs.zones = "This list may not be empty.";
    else {
      const bad = b.zones.find((z) => typeof z !== "string" || !this.catalog.isZone(z));
      if (bad !== undefined) errs.zones = `Object with slug=${String(bad)} does not exist.`;
    }
    if (b.tags !== undefined && b.tags !== null) {
      const e = tagsError(b.tags);
      if (e) errs.tags = e;
    }
    if (Object.keys(errs).length) return fail(400, errs);
    const image: CustomImage = {
      uuid: crypto.randomUUID(),
      name: b.name as string,
      slug: typeof b.slug === "string" ? b.slug : "",
      size_gb: 1,
      checksums: {},
      user_data_handling: b.user_data_handling as CustomImage["user_data_handling"],
      firmware_type: (b.firmware_type as CustomImage["firmware_type"] | undefined) ?? "bios",
      zones: (b.zones as string[]).map((slug) => ({ slug })),
      tags: { ...((b.tags ?? {}) as Record<string, string>) },
      created_at: createdAt,
    };
    this.catalog.customImages.set(image.uuid, image);
    const imp: ImageImport = { uuid: crypto.randomUUID(), url: b.url as string, customImage: image.uuid, tags: image.tags };
    this.imports.set(imp.uuid, imp);
    return ok(imp);
  }

  get(uuid: string): ImageImport | undefined {
    return isUuid(uuid) ? this.imports.get(uuid.toLowerCase()) : undefined;
  }

  /** The API's view of an import: "started" in the POST's answer, "success" once read again. */
  render(apiUrl: string, imp: ImageImport, justCreated = false): Record<string, unknown> {
    const image = this.catalog.customImages.get(imp.customImage);
    return {
      href: `${apiUrl}/custom-images/import/${imp.uuid}`,
      uuid: imp.uuid,
      custom_image: { href: `${apiUrl}/custom-images/${imp.customImage}`, uuid: imp.customImage, name: image?.name ?? "" },
      url: imp.url,
      status: justCreated ? "started" : image ? "success" : "failed",
      error_message: image ? "" : "The custom image was deleted.",
      tags: imp.tags,
    };
  }
}
