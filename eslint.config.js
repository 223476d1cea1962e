// The linter the test command runs (./scripts/test.sh): type-aware rules about promises only.
// A promise nobody awaits or catches can reject with nobody listening, and Bun exits on an
// unhandled rejection: every fire-and-forget call ends in a catch (`void` alone is not enough).
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["src/gen/**", "dist/**", "node_modules/**", ".tools/**", ".cache/**", "test/ca/**", "test/ca-legacy/**", "test/e2e/**", "test/nodegroupset/**"] },
  {
    files: ["src/**/*.ts", "test/**/*.ts", "scripts/**/*.ts", "bench/**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/no-floating-promises": ["error", { ignoreVoid: false, ignoreIIFE: false }],
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false, attributes: false } }],
      "@typescript-eslint/await-thenable": "error",
    },
  },
);
