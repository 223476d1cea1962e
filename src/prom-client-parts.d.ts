// Types for the parts of prom-client that metrics.ts imports one by one (the package's index also
// loads its Pushgateway with node:http, node:https and node:zlib, its cluster aggregator, and the
// OpenTelemetry API of its process metrics, none of which serve needs at start). Each part's
// module.exports is the class or function the index re-exports under the same name.
declare module "prom-client/lib/registry" {
  import { Registry } from "prom-client";
  export default Registry;
}
declare module "prom-client/lib/counter" {
  import { Counter } from "prom-client";
  export default Counter;
}
declare module "prom-client/lib/gauge" {
  import { Gauge } from "prom-client";
  export default Gauge;
}
declare module "prom-client/lib/histogram" {
  import { Histogram } from "prom-client";
  export default Histogram;
}
declare module "prom-client/lib/defaultMetrics" {
  import { collectDefaultMetrics } from "prom-client";
  export default collectDefaultMetrics;
}
