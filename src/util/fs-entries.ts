/**
 * Folder listings that follow symbolic links. Staging a dataset as a folder of links (to files or
 * to DICOM series folders) is common, and a `Dirent` only says "symlink": these helpers resolve
 * the link so that it is treated like its target. Broken links are reported as 'other'.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export type EntryKind = 'file' | 'dir' | 'other';

function kindOfStats(st: fs.Stats): EntryKind {
  return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
}

/** What a directory entry is, following a symbolic link to its target. */
export async function entryKind(dir: string, e: fs.Dirent): Promise<EntryKind> {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (!e.isSymbolicLink()) return 'other';
  try { return kindOfStats(await fsp.stat(path.join(dir, e.name))); } catch { return 'other'; }
}

/** Synchronous twin of {@link entryKind}. */
export function entryKindSync(dir: string, e: fs.Dirent): EntryKind {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (!e.isSymbolicLink()) return 'other';
  try { return kindOfStats(fs.statSync(path.join(dir, e.name))); } catch { return 'other'; }
}

/**
 * Entries of `dir` sorted by name (hidden ones skipped), each with its resolved kind.
 * `visited` holds the real paths of folders already entered by a recursive walk (an empty set is
 * seeded with `dir` itself): a link back to one of them is reported as 'other', so a link cycle
 * cannot recurse forever.
 */
export async function listEntries(dir: string, visited?: Set<string>): Promise<{ name: string; path: string; kind: EntryKind }[]> {
  if (visited !== undefined && visited.size === 0) visited.add(await fsp.realpath(dir).catch(() => dir));
  const entries = (await fsp.readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: { name: string; path: string; kind: EntryKind }[] = [];
  for (const e of entries) {
    const p = path.join(dir, e.name);
    let kind = await entryKind(dir, e);
    if (kind === 'dir' && visited !== undefined) {
      const real = await fsp.realpath(p).catch(() => p);
      if (visited.has(real)) kind = 'other';
      else visited.add(real);
    }
    out.push({ name: e.name, path: p, kind });
  }
  return out;
}
