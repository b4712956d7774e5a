/** Zip record signatures and limits shared by the reader and the writer. */
export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_EOCD = 0x06054b50;
export const SIG_EOCD64 = 0x06064b50;
export const SIG_EOCD64_LOCATOR = 0x07064b50;
export const U32_MAX = 0xffffffff;
export const U16_MAX = 0xffff;
/** fs.readSync / writeSync take at most 2 GiB - 1 per call. */
export const IO_CHUNK = 1 << 30;
