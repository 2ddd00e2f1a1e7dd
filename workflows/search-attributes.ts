/**
 * memshift's custom search attributes, shown as columns in the Web UI and
 * usable in `temporal workflow list --query`. `memshift setup`, the worker at
 * start, the dev-server script and the test set-up register exactly these.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const MigrationKind = defineSearchAttributeKey('MigrationKind', SearchAttributeType.KEYWORD);
export const MigrationPhase = defineSearchAttributeKey('MigrationPhase', SearchAttributeType.KEYWORD);
export const MigrationSource = defineSearchAttributeKey('MigrationSource', SearchAttributeType.KEYWORD);
export const MigrationTarget = defineSearchAttributeKey('MigrationTarget', SearchAttributeType.KEYWORD);
/** Set once a run ends: cut-over, rolled-back, rejected, failed, cancelled, … */
export const MigrationOutcome = defineSearchAttributeKey('MigrationOutcome', SearchAttributeType.KEYWORD);

export const MEMSHIFT_SEARCH_ATTRIBUTES = [MigrationKind, MigrationPhase, MigrationSource, MigrationTarget, MigrationOutcome];
