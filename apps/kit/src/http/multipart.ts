/**
 * What a multipart upload may carry besides its file's bytes: boundary lines, the part's headers, a preamble or an
 * epilogue. The file alone is held to the size limit, exactly (files); the body as a whole to the limit plus this, at
 * files and at the gateway in front of it, so nothing unbounded passes as framing and both refuse the same bodies.
 */
export const MULTIPART_FRAMING_BYTES = 64 * 1024;
