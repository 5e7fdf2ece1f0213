declare const __LOCKSTEP_VERSION__: string | undefined;

/** The package version, baked in by the build; the source tree reads it from package.json. */
export const VERSION: string =
  typeof __LOCKSTEP_VERSION__ === 'string' ? __LOCKSTEP_VERSION__ : (process.env.npm_package_version ?? '0.0.0-dev');
