import type { Attributes, Meter, MetricOptions } from '@opentelemetry/api';

/** One series of a TalliedCounter, its attributes bound once. */
export interface CounterCell {
  /** Adds a non-negative amount, as Counter.add would. */
  add(value: number): void;
}

interface Cell extends CounterCell {
  readonly attributes: Attributes;
  value: number;
  /** Exported once added to (even 0), as a Counter's series appears with its first add. */
  touched: boolean;
}

/**
 * A monotonic counter for the hot path (several adds per frame): each series is a plain number bound
 * to its attribute set once, read by the SDK only when metrics are collected (an ObservableCounter).
 * A Counter's add instead hashes its attributes into a string key and looks up its series on every
 * call. Exported exactly as a Counter of the same name and series would be.
 */
export class TalliedCounter {
  /** By attribute set (sorted entries, as the SDK keys its series). */
  private readonly cells = new Map<string, Cell>();

  constructor(meter: Meter, name: string, options: MetricOptions) {
    meter.createObservableCounter(name, options).addCallback((result) => {
      for (const cell of this.cells.values()) if (cell.touched) result.observe(cell.value, cell.attributes);
    });
  }

  /** The series of `attributes` (the same cell for the same set): bind it once, add to it often. */
  cell(attributes: Attributes): CounterCell {
    const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const known = this.cells.get(key);
    if (known) return known;
    const cell: Cell = {
      attributes,
      value: 0,
      touched: false,
      add(value: number) {
        // Counter.add ignores a negative amount (with a diagnostic warning) too.
        if (!(value >= 0)) return;
        this.value += value;
        this.touched = true;
      },
    };
    this.cells.set(key, cell);
    return cell;
  }
}
