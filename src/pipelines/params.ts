/**
 * parseParams: the one parameter parser of every element, for specs and for code alike.
 *
 * Parameters are strict whatever the element's schema says: a key the element does not declare is an error that
 * names its JSON path and lists the element's parameters (`operators[2].providres: unknown parameter of infer
 * (parameters: model, providers, maxInFlight, intraOpThreads, lookahead)`), so a typo never falls back silently
 * to a default. Any other problem is zod's first issue, at its path: `operators[2].maxInFlight: expected number,
 * received string`. Defaults are filled in.
 */
import { z } from 'zod';
import { PipelineSpecError } from '../errors.ts';

/** A JSON path as specs write it: `operators[2].providers[0]`. */
export const jsonPath = (path: ReadonlyArray<string | number>): string =>
  path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '');

/**
 * Parses `raw` as the parameters of element `name` with defaults filled in; otherwise throws one line,
 * PipelineSpecError `<origin>: <prefix><path>: <problem>`, origin being the spec file (or the element's name when
 * called from code) and prefix where the element sits in the spec (`operators[2]`).
 */
export function parseParams<P extends z.ZodTypeAny>(
  name: string,
  schema: P,
  raw: unknown,
  where: { readonly origin: string; readonly prefix?: ReadonlyArray<string | number> } = { origin: name },
): z.output<P> {
  if (!(schema instanceof z.ZodObject)) throw new TypeError(`element ${name}: its params must be a z.object`);
  const parsed = schema.strict().safeParse(raw);
  if (parsed.success) return parsed.data as z.output<P>;
  // an unknown key first: a misspelt `pth` is better named as such than reported as a missing `path`
  const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
  const fail = (path: ReadonlyArray<string | number>, problem: string): never => {
    const at = jsonPath([...(where.prefix ?? []), ...path]);
    throw new PipelineSpecError(where.origin, `${at === '' ? '' : `${at}: `}${problem}`);
  };
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(schema.shape);
    return fail([...issue.path, issue.keys[0]], `unknown parameter of ${name} (${known.length === 0 ? 'it takes none' : `parameters: ${known.join(', ')}`})`);
  }
  return fail(issue.path, `${issue.message.replace(/^./, (c) => c.toLowerCase())} (${name})`);
}
