/**
 * Everything one double holds: collections, aliases and snapshots, with the
 * rules real Qdrant applies to them (name clashes, alias resolution, atomic
 * alias changes, snapshots without aliases).
 */
import { createHash } from 'node:crypto';
import { Collection, type CollectionConfig } from './collection';
import { collectionNotFound, formatError, QdrantApiError, wrongInput } from './errors';

export interface SnapshotDescription {
  name: string;
  creation_time: string;
  size: number;
  checksum: string;
}

interface StoredSnapshot {
  description: SnapshotDescription;
  /** The collection the snapshot was taken of (after alias resolution). */
  collectionName: string;
  content: Collection;
}

export type AliasAction =
  | { create_alias: { collection_name: string; alias_name: string } }
  | { delete_alias: { alias_name: string } }
  | { rename_alias: { old_alias_name: string; new_alias_name: string } };

export class QdrantState {
  private readonly collections = new Map<string, Collection>();
  private readonly aliases = new Map<string, string>();
  private readonly snapshots = new Map<string, StoredSnapshot>();
  private snapshotSequence = 0;

  collectionNames(): string[] {
    return [...this.collections.keys()];
  }

  /** A collection by its name or by an alias of it. */
  resolve(nameOrAlias: string): { name: string; collection: Collection } {
    const name = this.aliases.get(nameOrAlias) ?? nameOrAlias;
    const collection = this.collections.get(name);
    if (!collection) throw collectionNotFound(nameOrAlias);
    return { name, collection };
  }

  exists(nameOrAlias: string): boolean {
    return this.collections.has(this.aliases.get(nameOrAlias) ?? nameOrAlias);
  }

  create(name: string, config: CollectionConfig): void {
    if (this.collections.has(name)) throw new QdrantApiError(409, `Wrong input: Collection \`${name}\` already exists!`);
    if (this.aliases.has(name)) {
      throw wrongInput(`Can't create collection with name ${name}. Alias with the same name already exists`);
    }
    this.collections.set(name, new Collection(config));
  }

  /**
   * Like Qdrant: deletes by collection name only (never through an alias),
   * drops the collection's aliases with it, answers false when nothing was
   * there. Its snapshots stay, so it can still be recovered.
   */
  delete(name: string): boolean {
    if (!this.collections.delete(name)) return false;
    for (const [alias, target] of this.aliases) {
      if (target === name) this.aliases.delete(alias);
    }
    return true;
  }

  aliasesOf(collectionName?: string): { alias_name: string; collection_name: string }[] {
    return [...this.aliases]
      .filter(([, target]) => collectionName === undefined || target === collectionName)
      .map(([alias, target]) => ({ alias_name: alias, collection_name: target }));
  }

  /** All actions or none: they run on a copy that replaces the aliases only if every one succeeds. */
  applyAliasActions(actions: AliasAction[]): void {
    const next = new Map(this.aliases);
    for (const action of actions) this.applyAliasAction(next, action);
    this.aliases.clear();
    for (const [alias, target] of next) this.aliases.set(alias, target);
  }

  private applyAliasAction(aliases: Map<string, string>, action: AliasAction): void {
    if ('create_alias' in action) {
      const { collection_name: collection, alias_name: alias } = action.create_alias;
      if (!this.collections.has(collection)) throw collectionNotFound(collection);
      if (this.collections.has(alias)) throw new QdrantApiError(409, `Wrong input: Collection \`${alias}\` already exists!`);
      aliases.set(alias, collection);
    } else if ('delete_alias' in action) {
      aliases.delete(action.delete_alias.alias_name);
    } else if ('rename_alias' in action) {
      const { old_alias_name: from, new_alias_name: to } = action.rename_alias;
      const target = aliases.get(from);
      if (target === undefined) throw new QdrantApiError(404, `Not found: Alias ${from} does not exists!`);
      aliases.delete(from);
      aliases.set(to, target);
    } else {
      throw formatError(`unknown alias action ${JSON.stringify(action)}`);
    }
  }

  /** A deep copy of points, config and payload indexes; aliases are not part of it. */
  createSnapshot(nameOrAlias: string): SnapshotDescription {
    const { name, collection } = this.resolve(nameOrAlias);
    const content = collection.clone();
    // Hashed point by point: one JSON string of 200k 768-dim points would outgrow V8's string limit.
    const hash = createHash('sha256');
    let size = 0;
    for (const part of [content.config, ...content.matching(undefined)]) {
      const text = JSON.stringify(part);
      hash.update(text);
      size += Buffer.byteLength(text);
    }
    const now = new Date();
    const description: SnapshotDescription = {
      name: `${name}-${++this.snapshotSequence}-${snapshotTimestamp(now)}.snapshot`,
      creation_time: now.toISOString().slice(0, 19),
      size,
      checksum: hash.digest('hex'),
    };
    this.snapshots.set(description.name, { description, collectionName: name, content });
    return description;
  }

  listSnapshots(nameOrAlias: string): SnapshotDescription[] {
    const { name } = this.resolve(nameOrAlias);
    return [...this.snapshots.values()].filter((s) => s.collectionName === name).map((s) => ({ ...s.description }));
  }

  /**
   * Replaces (or creates) the collection with a copy of the snapshot's
   * content. `location` is a URL or path whose last segment is the name of a
   * snapshot this double made, or that bare name. Aliases stay as they are.
   */
  recoverSnapshot(nameOrAlias: string, location: string, checksum?: string): void {
    const snapshotName = decodeURIComponent(location.split('/').pop() ?? '');
    const snapshot = this.snapshots.get(snapshotName);
    if (!snapshot) throw new QdrantApiError(404, `Not found: Snapshot file \`${location}\` does not exist!`);
    if (checksum !== undefined && checksum !== snapshot.description.checksum) {
      throw wrongInput(`Snapshot checksum mismatch: expected ${checksum}, got ${snapshot.description.checksum}`);
    }
    const name = this.aliases.get(nameOrAlias) ?? nameOrAlias;
    this.collections.set(name, snapshot.content.clone());
  }
}

function snapshotTimestamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace(/[T:]/g, '-');
}
