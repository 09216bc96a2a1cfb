/**
 * Access tokens (JWT, signed with the API secret) for the participants of an avatar session.
 * Tokens are credentials: pass them on, never log them.
 */
import { AccessToken } from 'livekit-server-sdk';
import { ATTRIBUTE_PUBLISH_ON_BEHALF } from './protocol.ts';

export interface ApiCredentials {
  readonly apiKey: string;
  readonly apiSecret: string;
}

export interface ParticipantTokenOptions {
  readonly room: string;
  readonly identity: string;
  /** Display name (default: none). */
  readonly name?: string;
  /** Seconds the token is valid (default 3600). */
  readonly ttl?: number;
  /** 'standard' (default) or 'agent'. */
  readonly kind?: 'standard' | 'agent';
  readonly attributes?: Record<string, string>;
  /** Defaults: may publish, subscribe and publish data. */
  readonly canPublish?: boolean;
  readonly canSubscribe?: boolean;
  /** May set its own attributes and metadata (default false). */
  readonly canUpdateOwnMetadata?: boolean;
}

/** A token to join `room` as `identity`. */
export async function participantToken(credentials: ApiCredentials, options: ParticipantTokenOptions): Promise<string> {
  const token = new AccessToken(credentials.apiKey, credentials.apiSecret, {
    identity: options.identity,
    ttl: options.ttl ?? 3600,
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(options.attributes !== undefined ? { attributes: options.attributes } : {}),
  });
  if (options.kind !== undefined) token.kind = options.kind;
  token.addGrant({
    roomJoin: true,
    room: options.room,
    canPublish: options.canPublish ?? true,
    canSubscribe: options.canSubscribe ?? true,
    canPublishData: true,
    ...(options.canUpdateOwnMetadata ? { canUpdateOwnMetadata: true } : {}),
  });
  return token.toJwt();
}

export interface AvatarTokenOptions {
  readonly room: string;
  /** The avatar's own identity. */
  readonly identity: string;
  /** The agent the avatar speaks for (its `lk.publish_on_behalf` attribute). */
  readonly agentIdentity: string;
  /** Seconds the token is valid (default 3600). */
  readonly ttl?: number;
}

/**
 * The avatar worker's token: kind 'agent', attribute lk.publish_on_behalf = the agent's identity, and leave to set
 * its own attributes (the session publishes its A/V offset as one, as LiveKit's agent job tokens allow).
 */
export function avatarToken(credentials: ApiCredentials, options: AvatarTokenOptions): Promise<string> {
  return participantToken(credentials, {
    room: options.room,
    identity: options.identity,
    kind: 'agent',
    attributes: { [ATTRIBUTE_PUBLISH_ON_BEHALF]: options.agentIdentity },
    canUpdateOwnMetadata: true,
    ...(options.ttl !== undefined ? { ttl: options.ttl } : {}),
  });
}
