/** Injection token of the parsed BrokerConfig. */
export const BROKER_CONFIG = Symbol('BROKER_CONFIG');
