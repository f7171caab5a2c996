/** Where the bus reports connection changes and consumer failures (a pino logger fits). */
export interface BusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
