import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The Tauri shell loads dist/ (release) or the dev server on port 5173 (devUrl).
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", target: "es2022", chunkSizeWarningLimit: 2000 },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
    setupFiles: ["src/test/setup.ts"],
    // A guard against hangs, not a speed check: the wizard's walkthrough
    // takes several seconds on a 2-core machine that is also compiling.
    testTimeout: 30_000,
  },
});
