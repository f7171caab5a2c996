// Types of assemble.mjs (plain JavaScript, because it runs in the image build before anything is installed).

/** Image target → the arguments `node` gets in that image's ENTRYPOINT. */
export declare const TARGETS: Readonly<Record<string, readonly string[]>>;

/** The workspace folders named by the root package.json's `workspaces` globs. */
export declare function workspaceDirs(root: string): string[];

/** Module specifiers a source file loads at run time (type-only imports left out). */
export declare function runtimeSpecifiers(code: string): string[];
