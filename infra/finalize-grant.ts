import type { Queue } from "./platform.ts";

/** What a function that may count a job's last item gets: the finalize queue's URL, and sending to it alone. */
export const finalizeGrant = (finalize: Queue) => ({
  environment: { LONGDOC_FINALIZE_URL: finalize.url },
  permission: { actions: ["sqs:SendMessage"], resources: [finalize.arn] },
});
