/**
 * Registers memshift's search attributes on a namespace where they are
 * missing (`memshift setup`, and every worker at start). Without them the
 * first `upsertSearchAttributes` of a run fails its workflow task and the run
 * sticks, so a worker that cannot register them refuses to start and says
 * what to run instead.
 */
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { MEMSHIFT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;

export interface SearchAttributeSetup {
  added: string[];
  present: string[];
}

export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<SearchAttributeSetup> {
  const names = MEMSHIFT_SEARCH_ATTRIBUTES.map((key) => key.name);
  const existing = await connection.operatorService.listSearchAttributes({ namespace }).catch((err: Error) => {
    throw new Error(`Cannot list the search attributes of namespace '${namespace}': ${err.message}. ${whatToRun(namespace, names)}`);
  });
  const present = names.filter((name) => name in (existing.customAttributes ?? {}));
  const missing = names.filter((name) => !present.includes(name));
  if (missing.length) {
    await connection.operatorService
      .addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((name) => [name, KEYWORD])) })
      .catch((err: Error) => {
        throw new Error(`Cannot register memshift's search attributes ${missing.join(', ')} on '${namespace}': ${err.message}. ${whatToRun(namespace, missing)}`);
      });
  }
  return { added: missing, present };
}

function whatToRun(namespace: string, names: string[]): string {
  const commands = names.map((name) => `temporal operator search-attribute create --namespace ${namespace} --name ${name} --type Keyword`);
  return `Someone with operator rights should run (on Temporal Cloud, add them as Keyword attributes of the namespace in its settings):\n  ${commands.join('\n  ')}`;
}
