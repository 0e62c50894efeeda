# orgsync: SCIM 2.0 server, SAML 2.0 SP and organization membership.
FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY tsconfig.json ./
# The embedded database (DATA_DIR=./data) is written by the node user; /app itself stays root-owned.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:3000/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Production sets DATABASE_URL and SERVER_SECRET; without DATABASE_URL it uses the embedded database in /app/data.
CMD ["node", "--import", "tsx", "src/main.ts"]
