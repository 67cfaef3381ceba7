import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { TeacherError } from './teacher-error.js';

/** Throws TeacherError 'DISTILL_TEACHER_NOT_FOUND' naming `file` unless it is a readable regular file. */
export async function requireTeacherFile(file: string): Promise<void> {
  let isFile = false;
  try {
    isFile = (await fsp.stat(file)).isFile();
  } catch (err) {
    throw new TeacherError('DISTILL_TEACHER_NOT_FOUND', `teacher ${file} not found (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  if (!isFile) throw new TeacherError('DISTILL_TEACHER_NOT_FOUND', `teacher ${file} is not a file`);
}

/** sha256 of a file as lowercase hex, streamed so that a multi-gigabyte teacher is never held whole. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
