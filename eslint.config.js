// Lint rules for the whole repository. ESLint + typescript-eslint (pure JavaScript: installs from any npm mirror),
// formatting is Prettier's job (`npm run format`).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "**/dist/**", ".local/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
      // A binding assigned once after a closure that reads it is declared `let` on purpose.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // Components alias `this` as `parent` for the nested builder functions of their recipe (STYLE.md rule 2).
      "@typescript-eslint/no-this-alias": ["error", { allowedNames: ["parent"] }],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
      },
    },
  },
);
