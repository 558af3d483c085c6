import { CheckError, type Issue } from '@tunepipe/core';

export { formatIssues, type Issue } from '@tunepipe/core';

/** Bad input to the converter: carries every problem found, never a stack trace for the user. */
export class ConvertError extends CheckError {
  constructor(subject: string, issues: readonly Issue[]) {
    super(subject, issues);
    this.name = 'ConvertError';
  }
}
