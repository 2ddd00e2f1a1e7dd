/** Every workflow the memshift worker runs (its workflowsPath). */
export { sqliteVecMigration } from './sqlite-vec-migration';
export { tenantSchemaUpgrade } from './tenant-schema-upgrade';
export { qdrantCollectionRebuild } from './qdrant-collection-rebuild';
export { memoryGraphMigration } from './memory-graph-migration';
export { secondBrainV3Migration } from './second-brain-v3-migration';
