// The data layer's one error type. Every message says what was wrong, where (file, demo, key, step) and what to do.
import { RdtError } from '../util/errors.js';

export interface DataErrorWhere {
  file?: string;
  demo?: string;
  key?: string;
  step?: number;
}

export class DataError extends RdtError {
  readonly file?: string;
  readonly demo?: string;
  readonly key?: string;
  readonly step?: number;
  readonly hint?: string;
  readonly problem: string;

  constructor(problem: string, where: DataErrorWhere = {}, hint?: string) {
    const loc = [
      where.file !== undefined ? `file ${where.file}` : '',
      where.demo !== undefined ? `demo ${where.demo}` : '',
      where.key !== undefined ? `key ${where.key}` : '',
      where.step !== undefined ? `step ${where.step}` : '',
    ].filter(Boolean).join(', ');
    super(`${loc ? `${loc}: ` : ''}${problem}${hint ? ` (${hint})` : ''}`);
    this.name = 'DataError';
    this.problem = problem;
    this.file = where.file;
    this.demo = where.demo;
    this.key = where.key;
    this.step = where.step;
    this.hint = hint;
  }
}
