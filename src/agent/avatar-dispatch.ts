/**
 * The agent worker's request for an avatar: an explicit dispatch of the agent named 'synctalk-avatar'
 * into the room (LiveKit's AgentDispatch API), with the two identities in the dispatch metadata.
 *
 * Metadata (JSON): `{"agentIdentity": "<the agent's identity>", "avatarIdentity": "<identity to join as>"}`.
 * The avatar worker accepts the job as `avatarIdentity` (kind agent, attribute lk.publish_on_behalf =
 * agentIdentity) and reads the audio streams of `agentIdentity`; the agent sends its speech to
 * `avatarIdentity`. Both sides know each other's identity before either joins.
 */
import { AgentDispatchClient } from 'livekit-server-sdk';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import type { ApiCredentials } from '../livekit/tokens.ts';

/** The agent name the avatar worker registers with (explicit dispatch only). */
export const AVATAR_AGENT_NAME = 'synctalk-avatar';

const metadataSchema = z.object({ agentIdentity: z.string().min(1), avatarIdentity: z.string().min(1) }).strict();

export type AvatarDispatchMetadata = z.infer<typeof metadataSchema>;

/** The avatar identity the agent asks for by default: `<agentIdentity>-avatar`. */
export const defaultAvatarIdentity = (agentIdentity: string): string => `${agentIdentity}-avatar`;

/** Parses a dispatch's metadata; anything else is an InputError naming the dispatch metadata. */
export function parseAvatarDispatchMetadata(metadata: string): AvatarDispatchMetadata {
  let json: unknown;
  try {
    json = JSON.parse(metadata);
  } catch {
    throw new InputError('avatar dispatch metadata', 'not JSON; expected {"agentIdentity": ..., "avatarIdentity": ...}');
  }
  const parsed = metadataSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError('avatar dispatch metadata', `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export interface DispatchAvatarOptions {
  /** Server URL (ws:// or http://; the API client converts). */
  readonly url: string;
  readonly credentials: ApiCredentials;
  readonly room: string;
  readonly metadata: AvatarDispatchMetadata;
  /** The avatar worker's agent name (default 'synctalk-avatar'). */
  readonly agentName?: string;
}

/** Creates the dispatch; resolves with its id. The server hands the job to a registered avatar worker. */
export async function dispatchAvatar(options: DispatchAvatarOptions): Promise<string> {
  const client = new AgentDispatchClient(options.url, options.credentials.apiKey, options.credentials.apiSecret);
  const dispatch = await client.createDispatch(options.room, options.agentName ?? AVATAR_AGENT_NAME, {
    metadata: JSON.stringify(options.metadata),
  });
  return dispatch.id;
}
