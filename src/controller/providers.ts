import type { Provider } from '../provider/provider.ts';
import type { ProviderSpec } from '../spec/schema.ts';

/** The provider a spec names; cloud providers' SDKs load only when chosen. */
export async function createProvider(spec: ProviderSpec, options: { home?: string } = {}): Promise<Provider> {
  switch (spec.kind) {
    case 'local': {
      const { createLocalProvider } = await import('../provider/local/local.ts');
      return createLocalProvider({ home: options.home });
    }
    case 'aws': {
      const { createAwsProvider } = await import('../provider/aws/provider.ts');
      return createAwsProvider(spec);
    }
    case 'ssh': {
      const { createSshProvider } = await import('../provider/ssh/provider.ts');
      return createSshProvider(spec, { home: options.home });
    }
  }
}
