export type LlamaFactoryValueType = 'bool' | 'int' | 'float' | 'str' | 'dict' | 'any';

export interface LlamaFactoryArg {
  /** The dataclass of the parser's list that holds the key (ModelArguments, TrainingArguments, …). */
  readonly parser: string;
  /** The class in that dataclass's hierarchy that declares the field (e.g. ExportArguments). */
  readonly declaredIn: string;
  readonly type: LlamaFactoryValueType;
  /** The resolved Python annotation. */
  readonly pyType: string;
  readonly default: unknown;
  /** Whether `llamafactory-cli train` accepts the key. */
  readonly train: boolean;
  /** Whether `llamafactory-cli export` accepts the key (its parser has no TrainingArguments). */
  readonly export: boolean;
  /** The field has no default: the dataclass cannot be built without it. */
  readonly required?: boolean;
  /** Declared values (Literal members, Enum values). */
  readonly choices?: readonly unknown[];
  readonly help?: string;
}

/** What LLaMA-Factory's dataset parser reads from a dataset_info.json entry. */
export interface LlamaFactoryDatasetInfoSchema {
  /** Keys that name where the data comes from, and the loader each selects. */
  readonly sources: Readonly<Record<string, string>>;
  /** Other top-level keys, with the parser's default. */
  readonly options: Readonly<Record<string, unknown>>;
  /** Keys read inside `columns`, with their defaults. */
  readonly columns: Readonly<Record<string, unknown>>;
  /** Keys read inside `tags` (sharegpt), with their defaults. */
  readonly tags: Readonly<Record<string, unknown>>;
  readonly formatting: readonly string[];
  readonly formattingDefault: string;
}

export interface VllmFlag {
  /**
   * flag (store_true), boolean (--x/--no-x), bool (takes a value read with Python's bool()), integer,
   * number, string, json, json_or_string; `[]` = several values.
   */
  readonly type: string;
  readonly default: unknown;
  /** Values argparse enforces. */
  readonly choices?: readonly unknown[];
  /** Known values argparse does not enforce (vLLM lists them in the metavar); the engine rejects others at start. */
  readonly values?: readonly unknown[];
  readonly deprecated?: boolean;
  readonly aliases?: readonly string[];
  readonly help?: string;
}
