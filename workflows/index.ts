/** Every workflow the memshift worker runs (its workflowsPath). */
export { sqliteVecMigration } from './sqlite-vec-migration';
